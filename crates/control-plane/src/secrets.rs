//! Secrets: set (value in the request body, sealed before it is stored), listed by name only,
//! deleted unless a function still routes to a revision that uses them, and resolved into the
//! environment of the deployments that name them. No response ever carries a value.

use crate::body::Body as Incoming;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use yun_activator::Secrets;
use yun_store::SecretRecord;
use yun_types::{ErrorCode, Function, RevisionSpec, now_ms};

use crate::{ApiError, ApiResult, ControlPlane, bad, body, internal, read_json_body};

impl ControlPlane {
    /// The values of a revision's secrets, opened with the data directory's key.
    pub(crate) fn resolve_secrets(&self, spec: &RevisionSpec) -> Result<Secrets, ApiError> {
        if spec.secrets.is_empty() {
            return Ok(Secrets::default());
        }
        let mut env = Vec::new();
        let mut values = Vec::new();
        let mut hasher = Sha256::new();
        for (var, name) in &spec.secrets {
            let record = self.store.secret(name)?.ok_or_else(|| {
                bad(format!("secret {name} is not set: set it with `yun secret set {name}`"))
            })?;
            let value = self.keyring.open(name, &record.sealed).map_err(internal)?;
            let text = value.expose_str().map_err(internal)?.to_string();
            for part in [var.as_bytes(), name.as_bytes(), text.as_bytes()] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
            values.push((name.clone(), text.as_bytes().to_vec()));
            env.push((var.clone(), text));
        }
        let digest = hasher.finalize();
        let fingerprint = u64::from_le_bytes(digest[..8].try_into().expect("sha256 is 32 bytes"));
        Ok(Secrets { env, redactor: yun_secrets::Redactor::new(values), fingerprint })
    }

    /// Functions that route to a revision using `secret`, with their records.
    fn users_of(&self, secret: &str) -> Result<Vec<Function>, ApiError> {
        let mut users = Vec::new();
        for function in self.store.functions()? {
            let mut uses = false;
            for n in function.routed_revisions() {
                if let Some(r) = self.store.revision(&function.name, n)?
                    && r.spec.secrets.values().any(|s| s == secret)
                {
                    uses = true;
                }
            }
            if uses {
                users.push(function);
            }
        }
        Ok(users)
    }

    pub(crate) fn list_secrets(&self) -> ApiResult {
        let mut out = Vec::new();
        for record in self.store.secrets()? {
            let used_by: Vec<String> =
                self.users_of(&record.name)?.into_iter().map(|f| f.name.to_string()).collect();
            out.push(json!({
                "name": record.name,
                "created_at_ms": record.created_at_ms,
                "updated_at_ms": record.updated_at_ms,
                "used_by": used_by,
            }));
        }
        Ok(body::json(200, &json!({ "secrets": out })))
    }

    pub(crate) async fn set_secret(&self, name: &str, incoming: Incoming) -> ApiResult {
        yun_secrets::validate_name(name).map_err(|e| bad(e.to_string()))?;
        let limit = yun_secrets::MAX_VALUE_BYTES;
        let value = read_json_body(incoming, limit).await.map_err(|e| match e.code {
            ErrorCode::PayloadTooLarge => {
                ApiError::new(ErrorCode::PayloadTooLarge, format!("a secret is at most {limit} bytes"))
            }
            _ => e,
        })?;
        let value = yun_secrets::SecretValue::from(value);
        yun_secrets::validate_value(value.expose()).map_err(|e| bad(e.to_string()))?;
        value
            .expose_str()
            .map_err(|_| bad("a secret must be UTF-8 text: it becomes an environment variable"))?;
        let _changing = self.changes.lock().await;
        let now = now_ms();
        let existing = self.store.secret(name)?;
        let record = SecretRecord {
            name: name.to_string(),
            sealed: self.keyring.seal(name, value.expose()),
            created_at_ms: existing.as_ref().map_or(now, |r| r.created_at_ms),
            updated_at_ms: now,
        };
        self.store.put_secret(&record)?;
        // Instances started from now on see the new value; warm ones are replaced.
        let users = self.users_of(name)?;
        for function in &users {
            self.publish(function, true).await?;
        }
        let status = if existing.is_some() { 200 } else { 201 };
        Ok(body::json(
            status,
            &json!({
                "name": name,
                "created": existing.is_none(),
                "updated_at_ms": now,
                "refreshed": users.iter().map(|f| f.name.to_string()).collect::<Vec<_>>(),
            }),
        ))
    }

    pub(crate) async fn delete_secret(&self, name: &str) -> ApiResult {
        let _changing = self.changes.lock().await;
        let users = self.users_of(name)?;
        if !users.is_empty() {
            let names: Vec<String> = users.iter().map(|f| f.name.to_string()).collect();
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("secret {name} is in use by {}: deploy them without it first", names.join(", ")),
            ));
        }
        if !self.store.delete_secret(name)? {
            return Err(ApiError::new(ErrorCode::NotFound, format!("no secret named {name}")));
        }
        Ok(body::json(200, &json!({ "deleted": name })))
    }
}
