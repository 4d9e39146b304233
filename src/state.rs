//! The states one call moves through between its attempts, and what each carries. Retry-only
//! data lives in the variants that need it, boxed where it is large: a call that succeeds at
//! once carries nothing but its attempt.

use crate::decide::Plan;
use crate::telemetry::{RetryWait, Telemetry};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Sleep;

pin_project! {
    /// Retry-only data lives in the variants, boxed where it is large, so a call that
    /// succeeds at once carries a small future (runtimes move it into their tasks).
    #[project = StateProj]
    pub(crate) enum State<F, W, Q, T, E> {
        // An attempt is in flight.
        Calling { #[pin] future: F },
        // Asking a budget that does not answer at once (one that asks a server: the round
        // trip dwarfs the allocation).
        Withdrawing { waiting: Pin<Box<Withdrawal<W, Q, T>>> },
        // Backing off before the next attempt: one allocation per sleep.
        Sleeping { waiting: Pin<Box<Pause<Q>>> },
        // Polling the inner service ready to send `next`; `transparent` for a resend of an
        // attempt the server did not process (not counted as an attempt).
        Readying { next: Option<Q>, transparent: bool },
        // Refused by admission control: fails with `error` when first polled.
        Refused { error: Option<E> },
        // Finished, or between two states while their data moves across.
        Done,
    }
}

pin_project! {
    /// The budget's answer pending for the retry `plan` describes; `last` is returned if
    /// denied.
    #[project = WithdrawalProj]
    pub(crate) struct Withdrawal<W, Q, T> {
        #[pin]
        pub(crate) withdraw: W,
        pub(crate) retry: Option<(Q, T, Plan)>,
    }
}

pin_project! {
    /// The backoff before sending `next`, counted in the waiting gauge while `wait` lives.
    #[project = PauseProj]
    pub(crate) struct Pause<Q> {
        #[pin]
        pub(crate) sleep: Sleep,
        pub(crate) next: Option<Q>,
        wait: RetryWait,
    }
}

impl<F, W, Q, T, E> State<F, W, Q, T, E> {
    /// Waiting for a budget that did not answer at once.
    pub(crate) fn withdrawing(withdraw: W, retry: Option<(Q, T, Plan)>) -> Self {
        State::Withdrawing {
            waiting: Box::pin(Withdrawal { withdraw, retry }),
        }
    }

    /// Sleeping `delay` before sending `next`, or straight to readying the service for no
    /// delay.
    pub(crate) fn backing_off(next: Q, delay: Duration, telemetry: &Telemetry) -> Self {
        let next = Some(next);
        if delay.is_zero() {
            return State::Readying {
                next,
                transparent: false,
            };
        }
        let (sleep, wait) = (tokio::time::sleep(delay), telemetry.retry_wait());
        State::Sleeping {
            waiting: Box::pin(Pause { sleep, next, wait }),
        }
    }
}
