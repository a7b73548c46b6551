//! Who is signed in, and whether they may do what they ask: argon2id password hashes,
//! sessions (a random token in an HttpOnly, SameSite=Strict cookie; only its SHA-256 is
//! stored), a CSRF token per session checked on every POST, roles, and the sign-in rate
//! limit. The server decides all of it; a page only hides what a role may not do.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ri_console_session";
/// The cookie that ties the sign-in form to the browser that loaded it (no session yet).
pub const SIGN_IN_COOKIE: &str = "ri_console_sign_in";

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads every page.
    Viewer,
    /// Also replays and resolves dead letters and acknowledges drift.
    Operator,
}

impl Role {
    /// Parses `viewer` or `operator`.
    pub fn parse(word: &str) -> Option<Role> {
        match word {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }

    /// The stored word.
    pub fn word(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// A signed-in user, as a request's session cookie names them.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl Session {
    /// Whether a form's token is this session's (compared in constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| same_secret(p, &self.csrf))
    }
}

/// Compares two secrets without an early exit, so timing does not tell how much matched.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes as hex: session tokens and CSRF tokens.
pub fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| anyhow::anyhow!("the system's random source failed: {err}"))?;
    Ok(hex::encode(bytes))
}

fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The argon2id PHC string of a password (random salt, the crate's default cost).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| anyhow::anyhow!("cannot hash the password: {err}"))
}

/// Whether `password` matches the PHC string `hash` (a malformed hash matches nothing).
pub fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Creates or replaces a user.
pub async fn put_user(pool: &PgPool, name: &str, role: Role, password: &str) -> anyhow::Result<()> {
    let hash = hash_password(password)?;
    sqlx::query(
        "INSERT INTO console_users (user_name, role, password_hash) VALUES ($1, $2, $3)
         ON CONFLICT (user_name) DO UPDATE
            SET role = excluded.role, password_hash = excluded.password_hash, disabled_at = NULL",
    )
    .bind(name)
    .bind(role.word())
    .bind(&hash)
    .execute(pool)
    .await
    .context("cannot store the user in console_users")?;
    Ok(())
}

/// Checks a name and password; the user's role when they match an enabled user. An
/// unknown name costs the same hash as a known one, so timing does not tell which exist.
pub async fn check_password(
    pool: &PgPool,
    decoy_hash: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<Option<Role>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT role, password_hash FROM console_users
          WHERE user_name = $1 AND disabled_at IS NULL",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .context("cannot read console_users")?;
    let (role, hash) = match &row {
        Some((role, hash)) => (Role::parse(role), hash.clone()),
        None => (None, decoy_hash.to_string()),
    };
    let password = password.to_string();
    let matched = tokio::task::spawn_blocking(move || password_matches(&password, &hash))
        .await
        .context("the password check was interrupted")?;
    Ok(if row.is_some() && matched { role } else { None })
}

/// Opens a session for `user`; returns the token for the cookie.
pub async fn open_session(pool: &PgPool, user: &str, lifetime: Duration) -> anyhow::Result<String> {
    let token = random_token()?;
    let csrf = random_token()?;
    let expires_at: DateTime<Utc> = Utc::now()
        + chrono::Duration::from_std(lifetime).context("the session lifetime is too long")?;
    sqlx::query(
        "INSERT INTO console_sessions (token_sha256, user_name, csrf_token, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_digest(&token))
    .bind(user)
    .bind(&csrf)
    .bind(expires_at)
    .execute(pool)
    .await
    .context("cannot store the session in console_sessions")?;
    // Expired sessions are dropped as new ones open: the table stays as small as its use.
    sqlx::query("DELETE FROM console_sessions WHERE expires_at < now()")
        .execute(pool)
        .await
        .context("cannot drop expired sessions")?;
    Ok(token)
}

/// The session a request's cookie names, when it is valid and its user enabled.
pub async fn session_of(pool: &PgPool, headers: &HeaderMap) -> anyhow::Result<Option<Session>> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT u.user_name, u.role, s.csrf_token
           FROM console_sessions s JOIN console_users u USING (user_name)
          WHERE s.token_sha256 = $1 AND s.expires_at > now() AND u.disabled_at IS NULL",
    )
    .bind(token_digest(&token))
    .fetch_optional(pool)
    .await
    .context("cannot read console_sessions")?;
    Ok(row
        .and_then(|(user, role, csrf)| Role::parse(&role).map(|role| Session { user, role, csrf })))
}

/// Ends the session a request's cookie names.
pub async fn close_session(pool: &PgPool, headers: &HeaderMap) -> anyhow::Result<()> {
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        sqlx::query("DELETE FROM console_sessions WHERE token_sha256 = $1")
            .bind(token_digest(&token))
            .execute(pool)
            .await
            .context("cannot end the session")?;
    }
    Ok(())
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, Secure when `secure`;
/// `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// Failed sign-ins allowed per user name within [`LIMIT_WINDOW`].
pub const USER_FAILURES: usize = 5;
/// Failed sign-ins allowed per client address within [`LIMIT_WINDOW`].
pub const ADDRESS_FAILURES: usize = 20;
/// The window the limits count in.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Counts failed sign-ins per user name and per client address in memory (a restart
/// forgets them; one console per database is the deployment this is made for).
#[derive(Debug, Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SignInLimiter {
    fn keys(user: &str, address: IpAddr) -> [(String, usize); 2] {
        [
            (format!("user:{user}"), USER_FAILURES),
            (format!("addr:{address}"), ADDRESS_FAILURES),
        ]
    }

    /// How long until this user may try again from this address (`None`: now).
    pub fn wait(&self, user: &str, address: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys(user, address)
            .into_iter()
            .filter_map(|(key, limit)| {
                let times = failures.get_mut(&key)?;
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > LIMIT_WINDOW)
                {
                    times.pop_front();
                }
                (times.len() >= limit)
                    .then(|| times.front().map(|t| LIMIT_WINDOW.saturating_sub(now - *t)))
                    .flatten()
            })
            .max()
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, user: &str, address: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, _) in Self::keys(user, address) {
            failures.entry(key).or_default().push_back(Instant::now());
        }
    }

    /// Forgets a user's failures after they signed in.
    pub fn succeeded(&self, user: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&format!("user:{user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_its_hash_only() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches("correct horse", &hash));
        assert!(!password_matches("correct horsf", &hash));
        assert!(!password_matches("correct horse", "not a phc string"));
    }

    #[test]
    fn the_limiter_stops_a_user_after_five_failures_and_an_address_after_twenty() {
        let limiter = SignInLimiter::default();
        let here: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..USER_FAILURES {
            assert!(limiter.wait("ana", here).is_none());
            limiter.failed("ana", here);
        }
        assert!(limiter.wait("ana", here).is_some());
        assert!(
            limiter.wait("bo", here).is_none(),
            "another user is not held"
        );
        for n in USER_FAILURES..ADDRESS_FAILURES {
            limiter.failed(&format!("u{n}"), here);
        }
        assert!(limiter.wait("bo", here).is_some(), "the address is held");
        limiter.succeeded("ana");
        assert!(limiter.wait("ana", [10, 0, 0, 1].into()).is_none());
    }

    #[test]
    fn cookies_are_read_by_name_and_secrets_compared_whole() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            "a=1; ri_console_session=abc; b=2".parse().expect("header"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        let set = set_cookie(SESSION_COOKIE, "t", Duration::from_secs(60), true);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.ends_with("Secure")
        );
    }
}
