//! What an instance is told about its function: the environment variables AWS sets in a Lambda
//! execution environment, derived from one description.

use std::time::Duration;

/// Region reported to functions unless the platform says otherwise. Not a real AWS region, on
/// purpose: SDK calls a function makes must not silently go to AWS with a plausible region.
pub const DEFAULT_REGION: &str = "yun-local-1";

/// Account id reported to functions: twelve zeros, the conventional "no account" of local emulators.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// What an instance is told about its function. The environment and the `/next` headers
/// (the invoked function ARN) derive from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionMeta {
    pub name: String,
    /// `$LATEST` or a published version number; AWS_LAMBDA_FUNCTION_VERSION.
    pub version: String,
    pub memory_mb: u64,
    pub region: String,
    pub account: String,
    /// `_HANDLER`: e.g. `app.handler` for Python; custom runtimes (Rust) usually have none.
    pub handler: Option<String>,
    /// Where the function's code lives inside the instance's file system: LAMBDA_TASK_ROOT.
    pub task_root: String,
    /// The managed runtime's identifier (`python3.12`, `provided.al2023`), for AWS_EXECUTION_ENV.
    pub runtime: Option<String>,
    /// The function's configured timeout. Not an environment variable in AWS either; it reaches
    /// the function as each invocation's deadline.
    pub timeout: Duration,
}

impl FunctionMeta {
    /// A description with yun's defaults: `$LATEST`, 128 MB, [`DEFAULT_REGION`],
    /// [`DEFAULT_ACCOUNT`], task root `/code`, 3 s timeout (AWS's default).
    pub fn new(name: impl Into<String>) -> Self {
        FunctionMeta {
            name: name.into(),
            version: "$LATEST".to_owned(),
            memory_mb: 128,
            region: DEFAULT_REGION.to_owned(),
            account: DEFAULT_ACCOUNT.to_owned(),
            handler: None,
            task_root: "/code".to_owned(),
            runtime: None,
            timeout: Duration::from_secs(3),
        }
    }

    /// `arn:aws:lambda:{region}:{account}:function:{name}`, the unqualified ARN.
    pub fn arn(&self) -> String {
        format!("arn:aws:lambda:{}:{}:function:{}", self.region, self.account, self.name)
    }

    /// The ARN with a qualifier (`…:function:name:qualifier`), as `/next` reports it when the
    /// caller invoked a version or alias explicitly.
    pub fn qualified_arn(&self, qualifier: &str) -> String {
        format!("{}:{qualifier}", self.arn())
    }

    /// CloudWatch-style log group name, `/aws/lambda/{name}`: some libraries log it or key on it.
    pub fn log_group(&self) -> String {
        format!("/aws/lambda/{}", self.name)
    }

    /// The environment the official runtime clients need (`lambda_runtime` panics without the
    /// first three, awslambdaric reads `_HANDLER` and `AWS_LAMBDA_RUNTIME_API`), plus the
    /// variables function code commonly reads. `runtime_api` is `host:port` of this instance's
    /// Runtime API, without a scheme, exactly as AWS passes it.
    ///
    /// Credentials (AWS_ACCESS_KEY_ID, …) are deliberately absent: yun has none to hand out.
    pub fn env(&self, runtime_api: &str) -> Vec<(String, String)> {
        let mut env: Vec<(&str, String)> = vec![
            ("AWS_LAMBDA_FUNCTION_NAME", self.name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", self.memory_mb.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", self.version.clone()),
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
            ("LAMBDA_TASK_ROOT", self.task_root.clone()),
            // AWS points this at its runtime files (/var/runtime); yun ships none, and the task
            // root is the only directory guaranteed to exist.
            ("LAMBDA_RUNTIME_DIR", self.task_root.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", self.log_group()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", format!("{}/[{}]yun", self.name, self.version)),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("TZ", ":UTC".to_owned()),
            ("LANG", "en_US.UTF-8".to_owned()),
            // Keeps Python's output unbuffered-ish and its import path sane, as AWS does.
            ("PYTHONUNBUFFERED", "1".to_owned()),
        ];
        if let Some(handler) = &self.handler {
            env.push(("_HANDLER", handler.clone()));
        }
        let execution_env = match &self.runtime {
            Some(runtime) => format!("AWS_Lambda_{runtime}"),
            None => "AWS_Lambda_provided".to_owned(),
        };
        env.push(("AWS_EXECUTION_ENV", execution_env));
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_and_env() {
        let mut meta = FunctionMeta::new("hello");
        meta.handler = Some("app.handler".into());
        meta.runtime = Some("python3.11".into());
        assert_eq!(meta.arn(), "arn:aws:lambda:yun-local-1:000000000000:function:hello");
        assert_eq!(meta.qualified_arn("7"), "arn:aws:lambda:yun-local-1:000000000000:function:hello:7");
        let env = meta.env("127.0.0.1:9001");
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AWS_LAMBDA_FUNCTION_NAME"), Some("hello"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("128"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_VERSION"), Some("$LATEST"));
        assert_eq!(get("AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get("_HANDLER"), Some("app.handler"));
        assert_eq!(get("LAMBDA_TASK_ROOT"), Some("/code"));
        assert_eq!(get("AWS_EXECUTION_ENV"), Some("AWS_Lambda_python3.11"));
        assert_eq!(get("AWS_LAMBDA_LOG_GROUP_NAME"), Some("/aws/lambda/hello"));
        assert_eq!(get("AWS_LAMBDA_INITIALIZATION_TYPE"), Some("on-demand"));
        assert_eq!(get("TZ"), Some(":UTC"));
        assert_eq!(get("AWS_ACCESS_KEY_ID"), None);
    }
}
