//! The decision for one registration.
//!
//! [`decide`] is a flat run of one-condition early returns, the most absolute
//! first, in the manner of `check_vma_flags()` in `mm/gup.c`: the result says
//! which rule fired, so logs and messages can name it.

use crate::error::Error;
use crate::report::Verdict;
pub use crate::settings::{LogDest, Mode, Settings};
use crate::types::Pin;

/// What to do with one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    Refuse,
    /// Forward with `IBV_ACCESS_ON_DEMAND` added.
    RewriteOdp,
}

/// Which rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `DAXGUARD_MODE=off`.
    Off,
    /// The registration asks for ODP: nothing is pinned.
    OnDemand,
    /// Nothing to look at (`len == 0`) or a range the kernel rejects itself (overflow).
    KernelJudges,
    /// Mappings could not be inspected (no `/proc`): the kernel stays the backstop.
    CannotInspect,
    /// No piece is fs-DAX.
    NotFsDax,
    /// Could not verify, and `DAXGUARD_UNKNOWN=allow`.
    UnverifiedAllowed,
    /// fs-DAX (or unverified) seen in `audit` mode.
    Audited,
    /// fs-DAX (or unverified) seen in `warn` mode.
    Warned,
    /// fs-DAX in `odp` mode, and the device supports ODP.
    OdpRewrite,
    /// fs-DAX: refused.
    FsDax,
    /// May be fs-DAX and could not be verified: refused.
    Unverified,
}

impl Rule {
    /// A short stable name, used in the audit record (`reason`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Off => "off",
            Rule::OnDemand => "on_demand",
            Rule::KernelJudges => "kernel_judges",
            Rule::CannotInspect => "cannot_inspect",
            Rule::NotFsDax => "not_fsdax",
            Rule::UnverifiedAllowed => "unverified_allowed",
            Rule::Audited => "audited",
            Rule::Warned => "warned",
            Rule::OdpRewrite => "odp_rewrite",
            Rule::FsDax => "fsdax",
            Rule::Unverified => "unverified",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub rule: Rule,
}

/// The decision for a pin asked as `pin` whose range was judged
/// `judged` (`None` when no lookup was made because of the mode or ODP).
/// `device_odp` is asked only in `odp` mode, and only for fs-DAX ranges.
pub fn decide(
    settings: &Settings,
    pin: Pin,
    judged: Option<&Result<Verdict, Error>>,
    device_odp: impl FnOnce() -> bool,
) -> Decision {
    let d = |action, rule| Decision { action, rule };
    if settings.mode == Mode::Off {
        return d(Action::Forward, Rule::Off);
    }
    if pin.on_demand {
        return d(Action::Forward, Rule::OnDemand);
    }
    let verdict = match judged {
        None | Some(Err(Error::InvalidRange { .. })) => return d(Action::Forward, Rule::KernelJudges),
        Some(Err(_)) => return d(Action::Forward, Rule::CannotInspect),
        Some(Ok(v)) => *v,
    };
    let fsdax = match verdict {
        Verdict::Allow => return d(Action::Forward, Rule::NotFsDax),
        Verdict::Unverified { .. } if settings.allow_unverified => return d(Action::Forward, Rule::UnverifiedAllowed),
        Verdict::Unverified { .. } => false,
        Verdict::FsDax { .. } => true,
    };
    match settings.mode {
        Mode::Audit => d(Action::Forward, Rule::Audited),
        Mode::Warn => d(Action::Forward, Rule::Warned),
        // Only a verified fs-DAX range is rewritten: an unverified one may be
        // ordinary memory that deserves its pinned, faster registration.
        Mode::Odp if fsdax && device_odp() => d(Action::RewriteOdp, Rule::OdpRewrite),
        _ if fsdax => d(Action::Refuse, Rule::FsDax),
        _ => d(Action::Refuse, Rule::Unverified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn decisions() {
        let with = |mode| Settings { mode, ..Default::default() };
        let fsdax: Result<Verdict, Error> = Ok(Verdict::FsDax { piece: 0 });
        let unver: Result<Verdict, Error> = Ok(Verdict::Unverified { piece: 0 });
        let allow: Result<Verdict, Error> = Ok(Verdict::Allow);
        let noproc: Result<Verdict, Error> = Err(Error::ProcOpen { pid: 0, errno: crate::sys::Errno::ENOENT });
        let pinned = Pin { write: true, on_demand: false };
        let odp = Pin { on_demand: true, ..pinned };
        let dec = |s: &Settings, p, j: &Result<Verdict, Error>, dev| decide(s, p, Some(j), || dev);
        let e = with(Mode::Enforce);
        assert_eq!(dec(&e, pinned, &fsdax, false).rule, Rule::FsDax);
        assert_eq!(dec(&e, pinned, &fsdax, false).action, Action::Refuse);
        assert_eq!(dec(&e, odp, &fsdax, false).rule, Rule::OnDemand);
        assert_eq!(dec(&e, pinned, &allow, false).rule, Rule::NotFsDax);
        assert_eq!(dec(&e, pinned, &unver, false).rule, Rule::Unverified);
        assert_eq!(dec(&e, pinned, &noproc, false), Decision { action: Action::Forward, rule: Rule::CannotInspect });
        let lax = Settings { allow_unverified: true, ..Default::default() };
        assert_eq!(dec(&lax, pinned, &unver, false).rule, Rule::UnverifiedAllowed);
        assert_eq!(dec(&with(Mode::Warn), pinned, &fsdax, false).action, Action::Forward);
        assert_eq!(dec(&with(Mode::Audit), pinned, &fsdax, false).rule, Rule::Audited);
        assert_eq!(dec(&with(Mode::Odp), pinned, &fsdax, true).action, Action::RewriteOdp);
        assert_eq!(dec(&with(Mode::Odp), pinned, &fsdax, false).action, Action::Refuse);
        assert_eq!(dec(&with(Mode::Odp), pinned, &unver, true).action, Action::Refuse);
        assert_eq!(decide(&with(Mode::Off), pinned, None, || true).rule, Rule::Off);
    }
}
