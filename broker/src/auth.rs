//! Who may connect. Users come from the configuration, each with an Argon2id password hash
//! (`switchyard hash-password` makes one); passwords are never stored. With no users
//! configured the broker is in development mode and accepts anonymous connections only; with
//! users, every connection must authenticate. Per-resource permissions are not implemented yet:
//! an authenticated user may do everything except load plugin code, which takes the
//! [`ADMINISTRATOR`] tag (RabbitMQ's name for the tag that may do everything).

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::config::UserConfig;

/// What a client presents to authenticate, whatever its protocol: each frontend translates
/// its own (a QUIC Hello's `Auth`, AMQP's SASL PLAIN, MQTT's CONNECT, STOMP's login headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Password {
        user: String,
        password: String,
    },
    /// A bearer token (not supported yet: refused).
    Token(String),
}

/// The user tag that may load plugin code into the broker.
pub const ADMINISTRATOR: &str = "administrator";

/// The configured users.
#[derive(Debug, Clone, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
    tags: HashMap<String, Vec<String>>,
    /// A hash no password matches, verified for unknown user names (see `from_config`).
    unknown_user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("user {user:?}: the password hash is not a valid PHC string: {reason}")]
    BadHash { user: String, reason: String },
    #[error("this broker has no users configured; connect anonymously")]
    NoUsersConfigured,
    #[error("this broker requires a user name and password")]
    CredentialsRequired,
    #[error("token authentication is not supported; use a user name and password")]
    TokensUnsupported,
    /// Deliberately the same for an unknown user and a wrong password.
    #[error("invalid user name or password")]
    Invalid,
}

/// Who a connection authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User(String),
}

impl Users {
    pub fn from_config(users: &[UserConfig]) -> Result<Users, AuthError> {
        let mut hashes = HashMap::new();
        let mut tags = HashMap::new();
        for user in users {
            tags.insert(user.name.clone(), user.tags.clone());
            PasswordHash::new(&user.password_hash).map_err(|e| AuthError::BadHash {
                user: user.name.clone(),
                reason: e.to_string(),
            })?;
            hashes.insert(user.name.clone(), user.password_hash.clone());
        }
        // Checked in place of a user that does not exist, so the answer takes as long as for
        // one that does and nobody can tell user names apart by timing.
        let unknown_user = if hashes.is_empty() {
            String::new()
        } else {
            hash_password("not the password of anyone")
        };
        Ok(Users {
            hashes,
            tags,
            unknown_user,
        })
    }

    /// Whether no user is configured (development mode: anonymous connections only).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `principal` may load plugin code: anyone on a broker without users (development
    /// mode, where everyone may do everything), else users tagged [`ADMINISTRATOR`].
    pub fn may_load_plugins(&self, principal: &Principal) -> bool {
        match principal {
            Principal::Anonymous => self.hashes.is_empty(),
            Principal::User(name) => self
                .tags
                .get(name)
                .is_some_and(|tags| tags.iter().any(|t| t == ADMINISTRATOR)),
        }
    }

    /// Checks credentials. Slow on purpose (Argon2): call it off the async runtime.
    pub fn authenticate(&self, auth: &Credentials) -> Result<Principal, AuthError> {
        match auth {
            Credentials::Anonymous if self.hashes.is_empty() => Ok(Principal::Anonymous),
            Credentials::Anonymous => Err(AuthError::CredentialsRequired),
            Credentials::Token(_) => Err(AuthError::TokensUnsupported),
            Credentials::Password { .. } if self.hashes.is_empty() => {
                Err(AuthError::NoUsersConfigured)
            }
            Credentials::Password { user, password } => {
                let (stored, known) = match self.hashes.get(user) {
                    Some(stored) => (stored, true),
                    None => (&self.unknown_user, false),
                };
                let hash = PasswordHash::new(stored).map_err(|_| AuthError::Invalid)?;
                let verified = Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok();
                if verified && known {
                    Ok(Principal::User(user.clone()))
                } else {
                    Err(AuthError::Invalid)
                }
            }
        }
    }
}

/// An Argon2id PHC string for `password`, with a random salt, for the configuration.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any password")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        Users::from_config(&[UserConfig {
            name: "app".into(),
            password_hash: hash_password("s3cret"),
            tags: Vec::new(),
        }])
        .unwrap()
    }

    #[test]
    fn the_right_password_authenticates_and_anything_else_does_not() {
        let users = users();
        let login = |user: &str, password: &str| {
            users.authenticate(&Credentials::Password {
                user: user.into(),
                password: password.into(),
            })
        };
        assert_eq!(login("app", "s3cret"), Ok(Principal::User("app".into())));
        assert_eq!(login("app", "wrong"), Err(AuthError::Invalid));
        assert_eq!(login("nobody", "s3cret"), Err(AuthError::Invalid));
        assert_eq!(
            users.authenticate(&Credentials::Anonymous),
            Err(AuthError::CredentialsRequired)
        );
    }

    #[test]
    fn without_users_only_anonymous_connections_are_accepted() {
        let open = Users::default();
        assert_eq!(
            open.authenticate(&Credentials::Anonymous),
            Ok(Principal::Anonymous)
        );
        let with_password = Credentials::Password {
            user: "a".into(),
            password: "b".into(),
        };
        assert_eq!(
            open.authenticate(&with_password),
            Err(AuthError::NoUsersConfigured)
        );
    }

    #[test]
    fn only_administrators_may_load_plugins_once_users_exist() {
        let users = Users::from_config(&[
            UserConfig {
                name: "app".into(),
                password_hash: hash_password("a"),
                tags: Vec::new(),
            },
            UserConfig {
                name: "ops".into(),
                password_hash: hash_password("b"),
                tags: vec![ADMINISTRATOR.into()],
            },
        ])
        .unwrap();
        assert!(!users.may_load_plugins(&Principal::User("app".into())));
        assert!(users.may_load_plugins(&Principal::User("ops".into())));
        assert!(!users.may_load_plugins(&Principal::Anonymous));
        assert!(Users::default().may_load_plugins(&Principal::Anonymous));
    }

    #[test]
    fn a_malformed_hash_is_refused_at_load() {
        let bad = UserConfig {
            name: "x".into(),
            password_hash: "plaintext".into(),
            tags: Vec::new(),
        };
        assert!(matches!(
            Users::from_config(&[bad]),
            Err(AuthError::BadHash { .. })
        ));
    }
}
