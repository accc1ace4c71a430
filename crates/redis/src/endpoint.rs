//! [`RedisEndpoint`]: the [`Handler`] the protocol layer calls, over one [`Kv`].

use std::sync::Arc;

use yun_kv::{DATABASES, Db, Kv, KvError, Op, ScanOptions};
use yun_resp::{AuthError, Command, Handler, KeyspaceStats, Reply};

use crate::auth::Credentials;
use crate::map::{error_reply, no_such_store, to_op, to_reply};

/// Keys visited per step when INFO counts a database's expiring keys.
const INFO_SCAN_STEP: usize = 1024;

/// Redis' data commands over yun's stores, for [`yun_resp::serve`] (or [`crate::serve`]).
pub struct RedisEndpoint {
    kv: Kv,
    credentials: Arc<dyn Credentials>,
}

/// An authenticated connection: one store, a handle per database.
pub struct Session {
    dbs: Box<[Db]>,
}

impl Session {
    /// The store this session reads and writes.
    pub fn store(&self) -> &str {
        self.dbs[0].store()
    }
}

impl RedisEndpoint {
    pub fn new(kv: Kv, credentials: Arc<dyn Credentials>) -> RedisEndpoint {
        RedisEndpoint { kv, credentials }
    }

    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// The session for `store`, created first if `create` and missing.
    async fn open(&self, store: &str, create: bool) -> Result<Session, KvError> {
        let dbs =
            || (0..u32::from(DATABASES)).map(|i| self.kv.db(store, i)).collect::<Result<Box<[Db]>, _>>();
        match dbs() {
            Err(KvError::NoSuchStore(_)) if create => {
                match self.kv.create_store(store, false).await {
                    // Another connection created it first.
                    Ok(()) | Err(KvError::StoreExists(_)) => {}
                    Err(e) => return Err(e),
                }
                Ok(Session { dbs: dbs()? })
            }
            r => Ok(Session { dbs: r? }),
        }
    }

    /// How many keys of `db` have a time to live: the engine keeps no count, so this walks
    /// the keyspace (INFO is rare; every step holds one shard's read lock at a time).
    async fn expiring(db: &Db) -> Result<u64, KvError> {
        let mut cursor = 0;
        let mut n = 0;
        loop {
            let (next, keys) = db
                .scan(cursor, ScanOptions { count: Some(INFO_SCAN_STEP), ..ScanOptions::default() })
                .await?;
            let ttls = db.exec(keys.into_iter().map(Op::Pttl).collect()).await?;
            n += ttls.into_iter().filter(|r| matches!(r, Ok(yun_kv::Reply::Int(ms)) if *ms >= 0)).count()
                as u64;
            if next == 0 {
                return Ok(n);
            }
            cursor = next;
            // The steps run without awaiting anything: let the worker serve other connections.
            tokio::task::yield_now().await;
        }
    }
}

impl Handler for RedisEndpoint {
    type Session = Session;

    fn anonymous(&self) -> Option<Session> {
        None
    }

    async fn authenticate(&self, user: Option<&[u8]>, password: &[u8]) -> Result<Session, AuthError> {
        // A name or token that is not text cannot be one the caller issued.
        let user = match user.map(std::str::from_utf8) {
            None => None,
            Some(Ok("default")) => None,
            Some(Ok(user)) => Some(user),
            Some(Err(_)) => return Err(AuthError::Invalid),
        };
        let password = std::str::from_utf8(password).map_err(|_| AuthError::Invalid)?;
        let grant = self.credentials.grant(user, password).ok_or(AuthError::Invalid)?;
        match self.open(&grant.store, grant.create).await {
            Ok(session) => Ok(session),
            Err(KvError::NoSuchStore(_)) => Err(AuthError::Unavailable("no such store".into())),
            Err(KvError::InvalidStoreName(name)) => {
                Err(AuthError::Unavailable(format!("invalid store name '{name}'")))
            }
            Err(e) => Err(AuthError::Unavailable(e.to_string())),
        }
    }

    async fn execute(&self, session: &Session, db: u8, commands: Vec<Command>) -> Vec<Reply> {
        let Some(handle) = session.dbs.get(usize::from(db)) else {
            return vec![Reply::err("DB index is out of range"); commands.len()];
        };
        let mut shapes = Vec::with_capacity(commands.len());
        let ops = commands
            .into_iter()
            .map(|command| {
                let (op, shape) = to_op(command);
                shapes.push(shape);
                op
            })
            .collect();
        match handle.exec(ops).await {
            Ok(results) => results
                .into_iter()
                .zip(shapes)
                .map(|(result, shape)| match result {
                    Ok(reply) => to_reply(reply, shape),
                    Err(e) => error_reply(&e),
                })
                .collect(),
            Err(e) => {
                let reply = match e {
                    KvError::NoSuchStore(_) => no_such_store(),
                    e => error_reply(&e),
                };
                vec![reply; shapes.len()]
            }
        }
    }

    async fn keyspace(&self, session: &Session) -> Vec<KeyspaceStats> {
        let mut out = Vec::new();
        for db in session.dbs.iter() {
            let keys = match db.dbsize().await {
                Ok(0) => continue,
                Ok(keys) => keys,
                Err(e) => {
                    tracing::warn!(store = db.store(), db = db.index(), error = %e, "redis: INFO keyspace");
                    continue;
                }
            };
            let expires = Self::expiring(db).await.unwrap_or(0);
            out.push(KeyspaceStats { db: db.index(), keys, expires });
        }
        out
    }
}
