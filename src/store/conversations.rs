//! Conversation state per (market, channel, user, role), and the user's language.

use super::{StoreResult, Tx, ts};
use crate::channel::UserKey;
use crate::conversation::Role;
use crate::text::Lang;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

/// The stored JSON of a role's state, if any.
pub fn load_state(tx: &Tx<'_>, market: &str, user: &UserKey, role: Role) -> StoreResult<Option<String>> {
    Ok(tx
        .prepare_cached(
            "SELECT state FROM conversations WHERE market = ?1 AND channel = ?2 AND user_id = ?3 AND role = ?4",
        )?
        .query_row(params![market, user.channel.code(), user.id, role.code()], |r| r.get(0))
        .optional()?)
}

/// The stored states of every role of a user in a market, read at once.
#[derive(Debug, Default)]
pub struct RoleStates {
    pub buyer: Option<String>,
    pub trader: Option<String>,
    pub courier: Option<String>,
}

pub fn load_states(tx: &Tx<'_>, market: &str, user: &UserKey) -> StoreResult<RoleStates> {
    let mut stmt =
        tx.prepare_cached("SELECT role, state FROM conversations WHERE market = ?1 AND channel = ?2 AND user_id = ?3")?;
    let rows = stmt.query_map(params![market, user.channel.code(), user.id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut states = RoleStates::default();
    for row in rows {
        let (role, state) = row?;
        match role.as_str() {
            "buyer" => states.buyer = Some(state),
            "trader" => states.trader = Some(state),
            "courier" => states.courier = Some(state),
            _ => {}
        }
    }
    Ok(states)
}

pub fn save_state(
    tx: &Tx<'_>,
    market: &str,
    user: &UserKey,
    role: Role,
    state: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO conversations (market, channel, user_id, role, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (market, channel, user_id, role) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
    )?
    .execute(params![market, user.channel.code(), user.id, role.code(), state, ts(now)])?;
    Ok(())
}

/// The language the user chose, if they did.
pub fn user_lang(tx: &Tx<'_>, user: &UserKey) -> StoreResult<Option<Lang>> {
    let code: Option<Option<String>> = tx
        .prepare_cached("SELECT lang FROM users WHERE channel = ?1 AND user_id = ?2")?
        .query_row(params![user.channel.code(), user.id], |r| r.get(0))
        .optional()?;
    Ok(code.flatten().and_then(|c| Lang::from_code(&c)))
}

impl super::Store {
    /// The language a user chose, outside any transaction (for channel chrome such as the
    /// terminal's resume notice).
    pub fn language_of(&self, user: &UserKey) -> StoreResult<Option<Lang>> {
        let code: Option<Option<String>> = self
            .conn()
            .prepare_cached("SELECT lang FROM users WHERE channel = ?1 AND user_id = ?2")?
            .query_row(params![user.channel.code(), user.id], |r| r.get(0))
            .optional()?;
        Ok(code.flatten().and_then(|c| Lang::from_code(&c)))
    }
}
