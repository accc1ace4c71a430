//! The seam to the caller's access policy: the endpoint asks, the caller decides.

/// What a credential opens. The caller (the control plane) implements it: e.g. the admin token
/// may name any store (and with no user the store `default`), a function's token only the
/// stores its function was deployed with (with no user, its first).
pub trait Credentials: Send + Sync + 'static {
    /// What `password` (a yun API token) grants; `user` is the store the client names
    /// (`AUTH store token` / `HELLO 3 AUTH store token`), `None` for `AUTH token` (and for
    /// Redis' `default` user). `None` refuses: the client gets `WRONGPASS`.
    fn grant(&self, user: Option<&str>, password: &str) -> Option<Grant>;
}

/// A closure is a policy too: `|user, token| ...`.
impl<F> Credentials for F
where
    F: Fn(Option<&str>, &str) -> Option<Grant> + Send + Sync + 'static,
{
    fn grant(&self, user: Option<&str>, password: &str) -> Option<Grant> {
        self(user, password)
    }
}

/// The store a session is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub store: String,
    /// Whether a missing store is created when the client authenticates; otherwise the client
    /// gets `-ERR no such store`.
    pub create: bool,
}

impl Grant {
    pub fn new(store: impl Into<String>, create: bool) -> Grant {
        Grant { store: store.into(), create }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closure_is_a_policy() {
        let policy: Box<dyn Credentials> = Box::new(|user: Option<&str>, token: &str| {
            (token == "t").then(|| Grant::new(user.unwrap_or("main"), false))
        });
        assert_eq!(policy.grant(None, "t"), Some(Grant { store: "main".into(), create: false }));
        assert_eq!(policy.grant(Some("x"), "t"), Some(Grant::new("x", false)));
        assert_eq!(policy.grant(None, "wrong"), None);
    }
}
