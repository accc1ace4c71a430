//! Run-once (CGI) invocations: a fresh sandboxed process per request, the request in its
//! environment and on stdin, the response from its stdout. Nothing survives the request.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yun_sandbox::Exit;
use yun_telemetry::LogStream;
use yun_types::ErrorCode;

use crate::output::{Attribution, pump};
use crate::{Body, Invocation, InvokeError, ProcessConfig, ProcessRuntime, base_env, boxed, cgi, read_body};

/// The run-once model's pool holds one of these: it only bounds how many processes run at once.
pub(crate) struct RunOnceFactory;

pub(crate) struct RunOnce {
    stopped: std::sync::atomic::AtomicBool,
}

impl yun_pool::Factory for RunOnceFactory {
    type Instance = RunOnce;
    type Error = InvokeError;
    async fn start(&self, _why: yun_pool::Start) -> Result<RunOnce, InvokeError> {
        Ok(RunOnce { stopped: std::sync::atomic::AtomicBool::new(false) })
    }
}

impl yun_pool::Instance for RunOnce {
    fn alive(&self) -> bool {
        !self.stopped.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

pub(crate) async fn invoke(
    runtime: &ProcessRuntime,
    config: &ProcessConfig,
    request: http::Request<Body>,
    inv: &Invocation,
) -> Result<http::Response<Body>, InvokeError> {
    let (parts, body) = request.into_parts();
    let body = read_body(body).await?;
    let mut env = base_env(config);
    env.extend(cgi::env(&cgi::CgiRequest {
        parts: &parts,
        path_info: &inv.path,
        script_name: &inv.prefix,
        body_len: body.len(),
        remote_addr: inv.remote_addr,
        server_port: 80,
    }));
    env.push(("YUN_INVOCATION_ID".to_string(), inv.id.clone()));
    if let Some(trace) = &inv.traceparent {
        env.push(("TRACEPARENT".to_string(), trace.clone()));
    }

    let to = Attribution::new(config.log_sink.clone(), config.function.clone(), config.revision);
    to.begin(&inv.id);
    let spec = runtime.instance_spec(config, env, true);
    let spawning = std::time::Instant::now();
    let mut instance = runtime.sandbox.spawn(spec).await.map_err(|e| {
        InvokeError::new(ErrorCode::Unavailable, format!("the process could not be started: {e}"))
    })?;
    let stdin = instance.stdin.take();
    let stdout = instance.stdout.take();
    let stderr = instance.stderr.take();
    instance.start().map_err(|e| {
        InvokeError::new(ErrorCode::Unavailable, format!("the process could not be started: {e}"))
    })?;
    // Every run-once request is a cold start: its process is new.
    let init = spawning.elapsed();

    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A script that never reads its body closes stdin early; that is its right.
            let _ = stdin.write_all(&body).await;
            let _ = stdin.shutdown().await;
        }
    };
    let max = runtime.limits.max_stdout_bytes;
    let collect = async move {
        let mut out = Vec::new();
        let Some(stdout) = stdout else { return Ok(out) };
        let read = stdout.take(max as u64 + 1).read_to_end(&mut out).await;
        match read {
            Ok(_) if out.len() > max => Err(()),
            _ => Ok(out),
        }
    };
    let logs = async {
        if let Some(stderr) = stderr {
            pump(stderr, LogStream::Stderr, to.clone()).await;
        }
    };
    let run = async {
        let ((), out, (), exit) = tokio::join!(feed, collect, logs, instance.wait());
        (out, exit)
    };
    let deadline = tokio::time::Instant::from_std(inv.deadline);
    let (out, exit) = match tokio::time::timeout_at(deadline, run).await {
        Ok(done) => done,
        Err(_) => {
            instance.kill();
            to.note("the process was killed: the function's timeout passed");
            return Err(InvokeError::new(
                ErrorCode::Timeout,
                format!("the function did not respond within its timeout of {:?}", config.timeout),
            ));
        }
    };
    let Ok(out) = out else {
        to.note(&format!("stdout exceeded {max} bytes"));
        return Err(InvokeError::new(
            ErrorCode::BadGateway,
            format!("the process wrote more than {} MiB to stdout", max >> 20),
        ));
    };
    match exit {
        Exit::Code(0) => {}
        _ if instance.memory_exceeded() => {
            to.note(&format!("the process was killed: it exceeded its memory limit ({exit})"));
            return Err(InvokeError::new(
                ErrorCode::MemoryLimitExceeded,
                format!("the function exceeded its memory limit of {} MiB", config.memory_bytes >> 20),
            ));
        }
        Exit::Code(code) => {
            to.note(&format!("the process exited with code {code}"));
            return Err(InvokeError::new(
                ErrorCode::FunctionError,
                format!("the function's process exited with code {code} (its stderr is in the logs)"),
            ));
        }
        Exit::Signal(sig) => {
            to.note(&format!("the process was killed by signal {sig}"));
            return Err(InvokeError::new(
                ErrorCode::BadGateway,
                format!("the function's process was killed by signal {sig} before it finished"),
            ));
        }
    }
    let response = cgi::parse_output(Bytes::from(out)).map_err(|e| {
        to.note(&e.to_string());
        InvokeError::new(ErrorCode::BadGateway, e.to_string())
    })?;
    let mut response = response.map(boxed);
    response.extensions_mut().insert(yun_pool::Temperature::Cold { init, waited: std::time::Duration::ZERO });
    // The process has ended: all it used was this request's.
    let used = instance.usage();
    response.extensions_mut().insert(yun_types::Used {
        max_memory_bytes: used.max_memory_bytes,
        cpu_ms: used.cpu_usec.map(|us| us as f64 / 1000.0),
    });
    Ok(response)
}
