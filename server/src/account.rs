//! An account: its own subject space. Clients of one account never see another's
//! messages (exports and imports, which cross that line, come later).

use crate::conn::Subscription;
use crate::sublist::Sublist;

pub const GLOBAL: &str = "$G";

pub struct Account {
    pub name: String,
    pub sublist: Sublist<Subscription>,
}

impl Account {
    pub fn new(name: &str) -> Self {
        Account {
            name: name.to_string(),
            sublist: Sublist::new(),
        }
    }
}
