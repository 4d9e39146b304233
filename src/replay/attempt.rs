//! [`AttemptInfo`]: what the layer knows of an attempt as it is sent.

use std::time::Duration;

/// The attempt a request is about to be sent as (see
/// [`Replay::before_send`](super::Replay::before_send)).
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::replay::AttemptInfo;
///
/// let a = AttemptInfo::new(2).with_time_left(Duration::from_millis(300));
/// assert_eq!((a.number, a.transparent, a.time_left), (2, 0, Some(Duration::from_millis(300))));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptInfo {
    /// 1 for the first attempt, 2 for the first retry or hedge, ...; a transparent resend
    /// (of an attempt the server did not process) keeps the number of the attempt it
    /// replaces.
    pub number: u32,
    /// Transparent resends so far in this call, this one included.
    pub transparent: u32,
    /// What this attempt has left to live: the smaller of the per-attempt timeout
    /// ([`RetryConfig::attempt_timeout`](crate::RetryConfig::attempt_timeout)) and what is
    /// left of the deadline ([`RetryConfig::deadline`](crate::RetryConfig::deadline)); `None`
    /// when neither is configured.
    pub time_left: Option<Duration>,
}

impl AttemptInfo {
    /// Attempt `number`, no transparent resend, no time limit known.
    ///
    /// See [`AttemptInfo`] for an example.
    pub fn new(number: u32) -> Self {
        AttemptInfo {
            number,
            transparent: 0,
            time_left: None,
        }
    }

    /// The same attempt with `time_left` to live.
    ///
    /// See [`AttemptInfo`] for an example.
    pub fn with_time_left(mut self, time_left: Duration) -> Self {
        self.time_left = Some(time_left);
        self
    }

    /// The same attempt, as the `n`th transparent resend of the call.
    ///
    /// ```
    /// assert_eq!(tower_retrier::replay::AttemptInfo::new(1).with_transparent(2).transparent, 2);
    /// ```
    pub fn with_transparent(mut self, n: u32) -> Self {
        self.transparent = n;
        self
    }

    /// Built by the layer from its call's state.
    pub(crate) fn of(number: u32, transparent: u8, time_left: Option<Duration>) -> Self {
        AttemptInfo {
            number,
            transparent: u32::from(transparent),
            time_left,
        }
    }
}
