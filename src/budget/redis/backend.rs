//! The fred client (or pool) a budget talks through.

use fred::prelude::{Client, ClientLike, Pool};
use std::time::Duration;

/// A user's client or pool, or one the budget built from a URL and owns.
#[derive(Clone)]
pub(crate) enum Backend {
    Client(Client),
    Pool(Pool),
}

impl Backend {
    /// The client for the next command (round-robin over a pool).
    pub(crate) fn client(&self) -> &Client {
        match self {
            Backend::Client(c) => c,
            Backend::Pool(p) => p.next(),
        }
    }

    pub(crate) fn clients(&self) -> Vec<&Client> {
        match self {
            Backend::Client(c) => vec![c],
            Backend::Pool(p) => p.clients().iter().collect(),
        }
    }

    /// Closes the connections of a backend the budget owns; bounded so a dead server cannot
    /// keep the background task alive.
    pub(crate) async fn quit(&self, within: Duration) {
        for c in self.clients() {
            let _ = tokio::time::timeout(within, c.quit()).await;
        }
    }
}
