//! Who holds the login's refresh token. Refresh tokens rotate, so exactly one container
//! (the leader) may hold one besides the source; a second holder, or a follower holding
//! one, is the rotation bug. Pure: fingerprints in, checks out.

use super::Check;
use crate::credentials::Role;

/// What one place holds, by fingerprint only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub name: String,
    pub role: Role,
    pub refresh: Option<String>,
    pub expires_at_ms: Option<i64>,
}

/// The source's side of the comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceToken {
    pub refresh: Option<String>,
    pub expires_at_ms: Option<i64>,
}

/// The host-scope summary: how many places hold the refresh token. `None` when nobody
/// holds one (a non-rotating login).
pub fn summary(source: Option<&SourceToken>, held: &[Holding]) -> Option<Check> {
    const CHECK: &str = "refresh token holders";
    let holders: Vec<&Holding> = held.iter().filter(|h| h.refresh.is_some()).collect();
    let source_fp = source.and_then(|s| s.refresh.as_deref());
    let followers = holders.iter().filter(|h| h.role == Role::Follower).count();
    let list = holders
        .iter()
        .map(|h| format!("{} ({})", h.name, h.role.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    match (holders.as_slice(), followers) {
        ([], _) => source_fp.map(|_| Check::ok("host", CHECK, "only the source holds the refresh token")),
        ([one], 0) => Some(Check::ok(
            "host",
            CHECK,
            if source_fp.is_some() && one.refresh.as_deref() == source_fp {
                format!(
                    "the source and {list} hold the same refresh token, as designed: only {} refreshes",
                    one.name
                )
            } else {
                format!("{list} holds a refresh token, not the source's: see its refresh token check")
            },
        )),
        ([one], _) => Some(Check::fail(
            "host",
            CHECK,
            format!(
                "follower {} holds a refresh token: when its claude refreshes, the leader and the source are logged out (the rotation bug)",
                one.name
            ),
            format!("claunch creds push {} (followers get the access token alone)", one.name),
        )),
        (many, _) => {
            let first = many[0].refresh.as_deref();
            let same = if many.iter().all(|h| h.refresh.as_deref() == first) {
                "the same one".to_string()
            } else {
                let fps: Vec<&str> = many.iter().filter_map(|h| h.refresh.as_deref()).collect();
                format!("fingerprints {}", fps.join(", "))
            };
            let fix = if many.len() - followers > 1 {
                "claunch up --force-recreate (one leader keeps the refresh token, the others get the access token alone)"
            } else {
                "claunch creds push (followers get the access token alone)"
            };
            Some(Check::fail(
                "host",
                CHECK,
                format!(
                    "{} containers hold a refresh token ({same}): {list}; refresh tokens rotate, so the first to refresh logs out the others (the rotation bug)",
                    many.len()
                ),
                fix,
            ))
        }
    }
}

/// A container's role label against what its file holds.
pub fn role(h: &Holding, rotating: bool) -> Check {
    const CHECK: &str = "role";
    let name = h.name.as_str();
    match (h.role, h.refresh.is_some()) {
        (Role::Leader, true) => Check::ok(name, CHECK, "leader: holds the refresh token and refreshes for the fleet"),
        (Role::Leader, false) if rotating => Check::fail(
            name,
            CHECK,
            "leader holds no refresh token: nobody in the fleet can refresh the login",
            format!("claunch creds push {name}"),
        ),
        (Role::Leader, false) => Check::warn(
            name,
            CHECK,
            "labelled leader, but the login does not rotate: it was made for an earlier login",
            "claunch up --force-recreate",
        ),
        (Role::Follower, true) => Check::fail(
            name,
            CHECK,
            "follower holds a refresh token: when its claude refreshes, the leader and the source are logged out (the rotation bug)",
            format!("claunch creds push {name} (followers get the access token alone)"),
        ),
        (Role::Follower, false) => Check::ok(name, CHECK, "follower: holds the access token only; the leader refreshes the login"),
        (Role::Shared, false) => Check::ok(name, CHECK, "shared: holds a login that does not rotate"),
        (Role::Shared, true) => Check::ok(name, CHECK, "shared: holds the whole login, refresh token included"),
    }
}

/// A leader's (or shared container's) refresh token against the source's: the same is the
/// design; a newer one waits for `creds sync`; a different, not newer one has diverged.
pub fn versus_source(h: &Holding, source: Option<&SourceToken>) -> Option<Check> {
    const CHECK: &str = "refresh token";
    let mine = h.refresh.as_deref()?;
    let source = source?;
    if h.role == Role::Follower {
        // The role check already says what is wrong with that.
        return None;
    }
    let name = h.name.as_str();
    let Some(theirs) = source.refresh.as_deref() else {
        return Some(Check::warn(
            name,
            CHECK,
            "held here, but the source has none: it is left from an earlier login",
            "claunch up --force-recreate",
        ));
    };
    if mine == theirs {
        return Some(Check::ok(
            name,
            CHECK,
            "the same as the source's, as designed",
        ));
    }
    let newer = h.expires_at_ms.unwrap_or(i64::MIN) > source.expires_at_ms.unwrap_or(i64::MIN);
    Some(if newer {
        Check::warn(
            name,
            CHECK,
            "newer than the source's: its claude refreshed the login since the last sync",
            "claunch creds sync",
        )
    } else {
        Check::fail(
            name,
            CHECK,
            format!("{mine} differs from the source's {theirs} and is not newer: the source and the container have diverged"),
            format!("claunch creds push {name} (gives it the source's login)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doctor::Status;

    fn h(name: &str, role: Role, refresh: Option<&str>, expires: i64) -> Holding {
        Holding {
            name: name.into(),
            role,
            refresh: refresh.map(str::to_string),
            expires_at_ms: Some(expires),
        }
    }

    fn src(refresh: Option<&str>, expires: i64) -> SourceToken {
        SourceToken {
            refresh: refresh.map(str::to_string),
            expires_at_ms: Some(expires),
        }
    }

    #[test]
    fn the_source_and_the_leader_holding_one_token_is_the_design() {
        let s = src(Some("aaa"), 10);
        let fleet = [
            h("p-a-1", Role::Leader, Some("aaa"), 10),
            h("p-a-2", Role::Follower, None, 10),
        ];
        let c = summary(Some(&s), &fleet).unwrap();
        assert_eq!(c.status, Status::Ok);
        assert_eq!(
            c.message,
            "the source and p-a-1 (leader) hold the same refresh token, as designed: only p-a-1 refreshes"
        );
        assert_eq!(role(&fleet[0], true).status, Status::Ok);
        assert_eq!(role(&fleet[1], true).status, Status::Ok);
        assert_eq!(
            versus_source(&fleet[0], Some(&s)).unwrap().status,
            Status::Ok
        );
        assert!(versus_source(&fleet[1], Some(&s)).is_none());
    }

    #[test]
    fn a_second_holder_or_a_holding_follower_is_the_rotation_bug() {
        let s = src(Some("aaa"), 10);
        let fleet = [
            h("p-a-1", Role::Leader, Some("aaa"), 10),
            h("p-a-2", Role::Follower, Some("aaa"), 10),
        ];
        let c = summary(Some(&s), &fleet).unwrap();
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.starts_with("2 containers hold a refresh token (the same one): p-a-1 (leader), p-a-2 (follower)"), "{}", c.message);
        assert!(c.fix.unwrap().starts_with("claunch creds push"));
        let r = role(&fleet[1], true);
        assert_eq!(r.status, Status::Fail);
        assert!(r.message.contains("rotation bug"));

        let lone = [h("p-a-2", Role::Follower, Some("aaa"), 10)];
        assert_eq!(summary(Some(&s), &lone).unwrap().status, Status::Fail);

        let leaders = [
            h("p-a-1", Role::Leader, Some("aaa"), 10),
            h("p-b-1", Role::Leader, Some("bbb"), 9),
        ];
        let c = summary(Some(&s), &leaders).unwrap();
        assert!(c.message.contains("fingerprints aaa, bbb"), "{}", c.message);
        assert!(c.fix.unwrap().starts_with("claunch up --force-recreate"));
    }

    #[test]
    fn divergence_is_told_from_a_newer_leader() {
        let s = src(Some("aaa"), 10);
        let newer = h("p-a-1", Role::Leader, Some("bbb"), 11);
        let c = versus_source(&newer, Some(&s)).unwrap();
        assert_eq!(
            (c.status, c.fix.as_deref()),
            (Status::Warn, Some("claunch creds sync"))
        );
        let older = h("p-a-1", Role::Leader, Some("bbb"), 10);
        let c = versus_source(&older, Some(&s)).unwrap();
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("diverged"), "{}", c.message);
    }

    #[test]
    fn a_leader_without_the_refresh_token_cannot_refresh() {
        let c = role(&h("p-a-1", Role::Leader, None, 10), true);
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.fix.as_deref(), Some("claunch creds push p-a-1"));
        assert!(summary(None, &[h("p-a-1", Role::Shared, None, 1)]).is_none());
    }
}
