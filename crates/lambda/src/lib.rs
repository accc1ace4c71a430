//! AWS Lambda compatibility for yun: the mechanism that lets an unmodified Lambda function
//! (Rust `lambda_runtime` / `lambda_http`, Python `awslambdaric`, any custom runtime) run as a
//! yun process function.
//!
//! What it is:
//! - [`RuntimeApi`]: the Lambda Runtime API (`/2018-06-01/runtime/...`) of one function
//!   instance, serving its runtime one invocation at a time, with [`RuntimeApi::invoke`] as the
//!   platform's side of it.
//! - [`FunctionMeta`]: what an instance is told about its function, above all the environment
//!   the official runtime clients require.
//! - [`http_to_event`] / [`result_to_http`]: an HTTP request as the API Gateway HTTP API v2
//!   (Function URL) event, and the function's result back as an HTTP response.
//! - [`invoke_api`]: parsing and answering the Lambda Invoke API
//!   (`POST /2015-03-31/functions/{name}/invocations`) as boto3 and the AWS CLI expect.
//!
//! What it is not: it starts, isolates and kills no processes, keeps no logs, applies no
//! timeouts and routes nothing. The platform does those and drives this crate. Nor does it emulate
//! the rest of AWS: there are no credentials, extensions, SnapStart (`/restore/*`) or response
//! streaming.

pub mod event;
pub mod invoke_api;
pub mod meta;
pub mod runtime_api;

pub use event::{MappingError, http_to_event, result_to_http};
pub use meta::{DEFAULT_ACCOUNT, DEFAULT_REGION, FunctionMeta};
pub use runtime_api::{InitError, Invocation, InvokeRequest, MAX_PAYLOAD_SIZE, RuntimeApi, RuntimeError};
