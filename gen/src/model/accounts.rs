//! Accounts: their users and permissions, exports, imports and mappings.

use super::check::{
    check_mapping_destination, check_subjects, duplicate, invalid_subject, is_name, unknown,
    valid_subject, Ctx,
};
use super::types::{Account, Flow, Import, User, SYSTEM_ACCOUNT, SYSTEM_USER};
use crate::diag::Diagnostic;
use crate::topology::{self, Topology};
use std::collections::HashMap;

pub(super) fn build(c: &mut Ctx, t: &Topology) -> Vec<Account> {
    let mut accounts: Vec<Account> = Vec::new();
    let mut user_owner: HashMap<String, String> = HashMap::new();
    for a in &t.accounts {
        check_name(c, a);
        if accounts.iter().any(|x| x.name == a.name.value) {
            c.err(duplicate("account", &a.name));
            continue;
        }
        let users = users(c, a, &mut user_owner);
        let exports = exports(c, a);
        let mappings = mappings(c, a);
        accounts.push(Account {
            name: a.name.value.clone(),
            users,
            exports,
            imports: Vec::new(),
            mappings,
        });
    }
    // Imports, once every account's exports are known.
    for a in &t.accounts {
        let mut imports = Vec::new();
        for i in &a.imports {
            imports.extend(import(c, a, i, &accounts));
        }
        if let Some(acc) = accounts.iter_mut().find(|x| x.name == a.name.value) {
            acc.imports = imports;
        }
    }
    accounts
}

fn check_name(c: &mut Ctx, a: &topology::Account) {
    if !is_name(&a.name.value) {
        c.err(
            Diagnostic::error(
                format!("invalid account name \"{}\"", a.name.value),
                a.name.span.clone(),
            )
            .label("not an account name")
            .help("use letters, digits, `-` and `_`"),
        );
    } else if a.name.value == SYSTEM_ACCOUNT || a.name.value == "$G" {
        c.err(
            Diagnostic::error(format!("account name \"{}\" is reserved", a.name.value), a.name.span.clone())
                .label("Canopy defines this account itself")
                .help("every generated server has a system account `SYS` with user `sys`; pick another name"),
        );
    }
}

/// The account's users; a user name belongs to one account in the whole topology.
fn users(
    c: &mut Ctx,
    a: &topology::Account,
    user_owner: &mut HashMap<String, String>,
) -> Vec<User> {
    let mut users = Vec::new();
    for u in &a.users {
        if !is_name(&u.name.value) {
            c.err(
                Diagnostic::error(
                    format!("invalid user name \"{}\"", u.name.value),
                    u.name.span.clone(),
                )
                .label("not a user name")
                .help("use letters, digits, `-` and `_`"),
            );
        }
        if u.name.value == SYSTEM_USER {
            c.err(
                Diagnostic::error("user name \"sys\" is reserved", u.name.span.clone())
                    .label("the system account's user")
                    .help("pick another name"),
            );
        }
        if let Some(owner) = user_owner.get(&u.name.value) {
            c.err(
                Diagnostic::error(
                    format!(
                        "user \"{}\" is already defined in account \"{owner}\"",
                        u.name.value
                    ),
                    u.name.span.clone(),
                )
                .label("second definition")
                .help("user names are global in a NATS server: each user belongs to one account"),
            );
            continue;
        }
        user_owner.insert(u.name.value.clone(), a.name.value.clone());
        users.push(User {
            name: u.name.value.clone(),
            publish: check_subjects(c, u.publish.as_ref(), "publish"),
            subscribe: check_subjects(c, u.subscribe.as_ref(), "subscribe"),
        });
    }
    users
}

fn exports(c: &mut Ctx, a: &topology::Account) -> Vec<Flow> {
    let mut exports = Vec::new();
    for e in &a.exports {
        if valid_subject(&e.subject.value, true) {
            exports.push(Flow {
                kind: e.kind,
                subject: e.subject.value.clone(),
            });
        } else {
            c.err(invalid_subject(&e.subject, "an export"));
        }
    }
    exports
}

fn mappings(c: &mut Ctx, a: &topology::Account) -> Vec<(String, String)> {
    let mut mappings = Vec::new();
    for (from, to) in &a.mappings {
        if !valid_subject(&from.value, true) {
            c.err(invalid_subject(from, "a mapping"));
            continue;
        }
        if let Some(d) = check_mapping_destination(&from.value, to) {
            c.err(d);
            continue;
        }
        mappings.push((from.value.clone(), to.value.clone()));
    }
    mappings
}

/// One import: from an account that exports what it imports.
fn import(
    c: &mut Ctx,
    a: &topology::Account,
    i: &topology::Import,
    accounts: &[Account],
) -> Option<Import> {
    if !valid_subject(&i.subject.value, true) {
        c.err(invalid_subject(&i.subject, "an import"));
        return None;
    }
    let Some(from) = &i.account else {
        c.err(
            Diagnostic::error(
                "`import` needs the `account` it imports from",
                i.span.clone(),
            )
            .label("no account given")
            .help("for example: account = \"CORE\""),
        );
        return None;
    };
    if from.value == a.name.value {
        c.err(
            Diagnostic::error("an account cannot import from itself", from.span.clone())
                .label("same account")
                .help("an account already sees its own subjects"),
        );
        return None;
    }
    let Some(exporter) = accounts.iter().find(|x| x.name == from.value) else {
        c.err(unknown(
            "account",
            from,
            accounts.iter().map(|x| x.name.as_str()),
        ));
        return None;
    };
    let exported = exporter.exports.iter().any(|e| {
        e.kind == i.kind && canopy_server::subject::is_subset(&i.subject.value, &e.subject)
    });
    if !exported {
        let list: Vec<String> = exporter
            .exports
            .iter()
            .map(|e| format!("{} \"{}\"", e.kind.as_str(), e.subject))
            .collect();
        c.err(
            Diagnostic::error(
                format!(
                    "account \"{}\" exports no {} matching \"{}\"",
                    from.value,
                    i.kind.as_str(),
                    i.subject.value
                ),
                i.subject.span.clone(),
            )
            .label("nothing to import")
            .help(if list.is_empty() {
                format!(
                    "add `export {{ {} = \"{}\" }}` to account \"{}\"",
                    i.kind.as_str(),
                    i.subject.value,
                    from.value
                )
            } else {
                format!("account \"{}\" exports: {}", from.value, list.join(", "))
            }),
        );
        return None;
    }
    if let Some(to) = &i.to {
        if !valid_subject(&to.value, true) {
            c.err(invalid_subject(to, "an import's `to`"));
            return None;
        }
    }
    Some(Import {
        kind: i.kind,
        subject: i.subject.value.clone(),
        account: from.value.clone(),
        to: i.to.as_ref().map(|x| x.value.clone()),
    })
}
