//! Who may read and write what: rules by ecosystem and name pattern.

use serde::Deserialize;

use super::Identity;

/// The access policy: a default for reads and a list of rules, first match wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessPolicy {
    /// Whether anonymous clients may read (proxied and hosted content alike). When false,
    /// every read needs a credential, whatever the rules say.
    pub anonymous_read: bool,
    /// Rules checked in order; the first whose ecosystem and pattern match decides.
    pub rules: Vec<AccessRule>,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            anonymous_read: true,
            rules: Vec::new(),
        }
    }
}

/// One rule, for example: in npm, `@acme/*` may be read by any signed-in user and written by
/// `alice` and `bob`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessRule {
    /// `npm`, `pypi`, `docker`, `maven`, or `*` for all.
    #[serde(default = "any")]
    pub ecosystem: String,
    /// A package or repository name; `*` matches any run of characters.
    pub pattern: String,
    /// Who may read: `*` (anyone), `@authenticated`, or user names. Unset: the default.
    pub read: Option<Vec<String>>,
    /// Who may write: `@authenticated` or user names. Unset: any signed-in user.
    pub write: Option<Vec<String>>,
    /// Allow publishing a name that also exists upstream (off by default, to protect
    /// against dependency confusion).
    #[serde(default)]
    pub publish_over_upstream: bool,
}

fn any() -> String {
    "*".to_owned()
}

/// The ecosystems a rule may name.
const ECOSYSTEMS: [&str; 5] = ["*", "npm", "pypi", "docker", "maven"];

impl AccessPolicy {
    /// Refuses rules that could never apply as written: an unknown ecosystem, an empty
    /// pattern, or a principal that is neither `*`, `@authenticated` nor a possible user
    /// name. A typo in a rule meant to hide packages would otherwise leave them readable.
    pub fn validate(&self) -> Result<(), String> {
        for (index, rule) in self.rules.iter().enumerate() {
            let at = format!("auth.rules[{index}] (pattern {:?})", rule.pattern);
            if !ECOSYSTEMS.contains(&rule.ecosystem.as_str()) {
                return Err(format!(
                    "{at}: unknown ecosystem {:?}; use one of {}",
                    rule.ecosystem,
                    ECOSYSTEMS.join(", ")
                ));
            }
            if rule.pattern.is_empty() {
                return Err(format!("{at}: the pattern is empty"));
            }
            let principals = rule.read.iter().flatten().map(|who| (who, true));
            let principals = principals.chain(rule.write.iter().flatten().map(|who| (who, false)));
            for (who, reading) in principals {
                let known = (reading && who == "*")
                    || who == "@authenticated"
                    || super::validate_user_name(who).is_ok();
                if !known {
                    let list = if reading { "read" } else { "write" };
                    return Err(format!(
                        "{at}: {list} names {who:?}, which is not {}@authenticated or a user name \
                         (1-64 of a-z 0-9 . _ -)",
                        if reading { "*, " } else { "" }
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Reading or writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Downloading, listing, viewing.
    Read,
    /// Publishing, tagging, deleting.
    Write,
}

/// The outcome of an access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Go ahead.
    Granted,
    /// No credential was given and one is needed: answer 401 with a challenge.
    NeedsCredentials,
    /// The credential is valid but not allowed: answer 403.
    Forbidden,
}

impl AccessPolicy {
    /// Decides whether `identity` (`None` for anonymous) may do `action` on `name`.
    pub fn check(
        &self,
        identity: Option<&Identity>,
        ecosystem: &str,
        name: &str,
        action: Action,
    ) -> Access {
        if identity.is_some_and(|id| id.admin && (action == Action::Read || id.can_write)) {
            return Access::Granted;
        }
        if action == Action::Write && identity.is_some_and(|id| !id.can_write) {
            return Access::Forbidden;
        }
        if action == Action::Read && !self.anonymous_read && identity.is_none() {
            return Access::NeedsCredentials;
        }
        let rule = self.rule_for(ecosystem, name);
        let principals = match action {
            Action::Read => rule.and_then(|r| r.read.as_deref()),
            Action::Write => rule.and_then(|r| r.write.as_deref()),
        };
        let default_principals = [if action == Action::Read {
            "*"
        } else {
            "@authenticated"
        }
        .to_owned()];
        let principals = principals.unwrap_or(&default_principals);
        match (allows(principals, identity), identity) {
            (true, _) => Access::Granted,
            (false, None) => Access::NeedsCredentials,
            (false, Some(_)) => Access::Forbidden,
        }
    }

    /// The first rule matching a name, if any.
    pub fn rule_for(&self, ecosystem: &str, name: &str) -> Option<&AccessRule> {
        self.rules.iter().find(|rule| {
            (rule.ecosystem == "*" || rule.ecosystem == ecosystem)
                && glob_match(&rule.pattern, name)
        })
    }

    /// Whether a name that exists upstream may still be published here.
    pub fn may_publish_over_upstream(&self, ecosystem: &str, name: &str) -> bool {
        self.rule_for(ecosystem, name)
            .is_some_and(|rule| rule.publish_over_upstream)
    }
}

fn allows(principals: &[String], identity: Option<&Identity>) -> bool {
    principals
        .iter()
        .any(|principal| match (principal.as_str(), identity) {
            ("*", _) => true,
            ("@authenticated", Some(_)) => true,
            (user, Some(id)) => user == id.user,
            (_, None) => false,
        })
}

/// Matches `pattern` where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: &str, can_write: bool) -> Identity {
        Identity {
            user: user.into(),
            admin: false,
            can_write,
            token_id: None,
        }
    }

    fn policy() -> AccessPolicy {
        toml_like(vec![
            AccessRule {
                ecosystem: "npm".into(),
                pattern: "@acme/*".into(),
                read: Some(vec!["@authenticated".into()]),
                write: Some(vec!["alice".into()]),
                publish_over_upstream: true,
            },
            AccessRule {
                ecosystem: "*".into(),
                pattern: "secret-*".into(),
                read: Some(vec!["bob".into()]),
                write: None,
                publish_over_upstream: false,
            },
        ])
    }

    fn toml_like(rules: Vec<AccessRule>) -> AccessPolicy {
        AccessPolicy {
            anonymous_read: true,
            rules,
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("@acme/*", "@acme/hello"));
        assert!(!glob_match("@acme/*", "@acmex/hello"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-c"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn defaults_allow_anonymous_reads_and_signed_in_writes() {
        let p = AccessPolicy::default();
        assert_eq!(p.check(None, "npm", "react", Action::Read), Access::Granted);
        assert_eq!(
            p.check(None, "npm", "react", Action::Write),
            Access::NeedsCredentials
        );
        assert_eq!(
            p.check(Some(&id("carol", true)), "npm", "x", Action::Write),
            Access::Granted
        );
        assert_eq!(
            p.check(Some(&id("carol", false)), "npm", "x", Action::Write),
            Access::Forbidden
        );
        let closed = AccessPolicy {
            anonymous_read: false,
            rules: vec![],
        };
        assert_eq!(
            closed.check(None, "npm", "react", Action::Read),
            Access::NeedsCredentials
        );
    }

    #[test]
    fn rules_decide_by_ecosystem_and_pattern() {
        let p = policy();
        assert_eq!(
            p.check(None, "npm", "@acme/x", Action::Read),
            Access::NeedsCredentials
        );
        assert_eq!(
            p.check(Some(&id("bob", true)), "npm", "@acme/x", Action::Read),
            Access::Granted
        );
        assert_eq!(
            p.check(Some(&id("bob", true)), "npm", "@acme/x", Action::Write),
            Access::Forbidden
        );
        assert_eq!(
            p.check(Some(&id("alice", true)), "npm", "@acme/x", Action::Write),
            Access::Granted
        );
        assert_eq!(
            p.check(None, "pypi", "@acme/x", Action::Read),
            Access::Granted
        );
        assert_eq!(
            p.check(Some(&id("alice", true)), "pypi", "secret-x", Action::Read),
            Access::Forbidden
        );
        assert!(p.may_publish_over_upstream("npm", "@acme/x"));
        assert!(!p.may_publish_over_upstream("npm", "react"));
    }

    #[test]
    fn admins_may_do_anything_their_token_allows() {
        let admin = Identity {
            user: "root".into(),
            admin: true,
            can_write: true,
            token_id: None,
        };
        assert_eq!(
            policy().check(Some(&admin), "npm", "@acme/x", Action::Write),
            Access::Granted
        );
        let read_only = Identity {
            can_write: false,
            ..admin
        };
        assert_eq!(
            policy().check(Some(&read_only), "npm", "@acme/x", Action::Write),
            Access::Forbidden
        );
    }

    #[test]
    fn rules_that_cannot_apply_are_refused() {
        let policy = |rule: serde_json::Value| -> AccessPolicy {
            serde_json::from_value(serde_json::json!({ "rules": [rule] })).unwrap()
        };
        let good = policy(
            serde_json::json!({"ecosystem": "docker", "pattern": "private/*",
            "read": ["@authenticated", "bob"], "write": ["alice"]}),
        );
        assert_eq!(good.validate(), Ok(()));
        for (rule, needle) in [
            (
                serde_json::json!({"ecosystem": "dockr", "pattern": "x"}),
                "unknown ecosystem \"dockr\"",
            ),
            (serde_json::json!({"pattern": ""}), "pattern is empty"),
            (
                serde_json::json!({"pattern": "x", "read": ["@authenticatd"]}),
                "read names \"@authenticatd\"",
            ),
            (
                serde_json::json!({"pattern": "x", "write": ["*"]}),
                "write names \"*\"",
            ),
            (
                serde_json::json!({"pattern": "x", "write": ["Alice"]}),
                "write names \"Alice\"",
            ),
        ] {
            let err = policy(rule.clone()).validate().unwrap_err();
            assert!(err.contains(needle), "{rule}: {err}");
        }
    }
}
