//! What the arguments of `ibv_rereg_mr` and `ibv_reg_mr_ex` ask for: pure
//! functions of the values the program passed, so the exports only read
//! the arguments and act, and the `verbs_args` fuzz target can try every
//! combination of flags and attributes.
//!
//! # References
//! - [ibv_rereg_mr(3)](https://man7.org/linux/man-pages/man3/ibv_rereg_mr.3.html)
//! - `struct ibv_mr_init_attr` and `ibv_reg_mr_ex()` in rdma-core's
//!   `libibverbs/verbs.h` (rdma-core 57+)

use std::ffi::c_int;

use verbs_sys::{
    IBV_ACCESS_ON_DEMAND, IBV_REG_MR_MASK_ADDR, IBV_REG_MR_MASK_FD, IBV_REREG_MR_CHANGE_ACCESS, IBV_REREG_MR_CHANGE_PD,
    IBV_REREG_MR_CHANGE_TRANSLATION, ibv_mr_init_attr,
};

use crate::types::Buffer;

/// What an `ibv_rereg_mr` that moves its MR asks the guard to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rereg {
    /// The range it would pin: `addr`, `length` as given.
    pub buffer: Buffer,
    /// The access flags judged and recorded: the call's own when it
    /// restates them (`IBV_REREG_MR_CHANGE_ACCESS`), else 0: the MR keeps
    /// flags the shim cannot see, so it is judged as pinned, not on demand.
    pub access: u32,
    /// Whose protection domain says whether the device does ODP.
    pub odp_pd: OdpPd,
}

/// The protection domain an on-demand rewrite is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OdpPd {
    /// The `pd` argument: the call moves the MR to it (`IBV_REREG_MR_CHANGE_PD`),
    /// or the MR is NULL and there is no other.
    Given,
    /// The MR's own (`mr->pd`).
    Mrs,
}

/// `None` when the call pins nothing new (no `IBV_REREG_MR_CHANGE_TRANSLATION`:
/// forwarded unjudged); else what to judge.
pub fn rereg(flags: c_int, addr: u64, length: u64, access: c_int, mr_is_null: bool) -> Option<Rereg> {
    if flags & IBV_REREG_MR_CHANGE_TRANSLATION == 0 {
        return None;
    }
    let access = if flags & IBV_REREG_MR_CHANGE_ACCESS != 0 { access as u32 } else { 0 };
    let odp_pd = if flags & IBV_REREG_MR_CHANGE_PD != 0 || mr_is_null { OdpPd::Given } else { OdpPd::Mrs };
    Some(Rereg { buffer: Buffer { addr, len: length }, access, odp_pd })
}

/// The access flags an `ibv_rereg_mr` passes on: the caller's, with
/// `IBV_ACCESS_ON_DEMAND` added when the guard asks for an on-demand pin
/// and the call restates its flags (otherwise there are none to rewrite).
pub fn rereg_access(flags: c_int, access: c_int, on_demand: bool) -> c_int {
    if flags & IBV_REREG_MR_CHANGE_ACCESS != 0 && on_demand { access | IBV_ACCESS_ON_DEMAND as c_int } else { access }
}

/// The range an `ibv_reg_mr_ex` registration pins, or `None` when it pins no
/// user memory daxguard can judge: a dma-buf registration
/// (`IBV_REG_MR_MASK_FD`), or one without an address (`IBV_REG_MR_MASK_ADDR`
/// unset: libibverbs refuses it). Judged with `attr.access`.
pub fn reg_mr_ex(attr: &ibv_mr_init_attr) -> Option<Buffer> {
    if attr.comp_mask & IBV_REG_MR_MASK_FD != 0 || attr.comp_mask & IBV_REG_MR_MASK_ADDR == 0 {
        return None;
    }
    Some(Buffer { addr: attr.addr as u64, len: attr.length as u64 })
}

/// The attributes an `ibv_reg_mr_ex` passes on when the guard asks for an
/// on-demand pin: a copy with `IBV_ACCESS_ON_DEMAND` added, or `None` when
/// the caller's own attributes go on unchanged (no rewrite asked, or the
/// flag is already there).
pub fn reg_mr_ex_rewritten(attr: &ibv_mr_init_attr, on_demand: bool) -> Option<ibv_mr_init_attr> {
    let access = if on_demand { attr.access as u32 | IBV_ACCESS_ON_DEMAND } else { attr.access as u32 };
    (access != attr.access as u32).then_some(ibv_mr_init_attr { access: access as c_int, ..*attr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereg_judges_only_a_new_translation() {
        let t = IBV_REREG_MR_CHANGE_TRANSLATION;
        assert_eq!(rereg(IBV_REREG_MR_CHANGE_ACCESS | IBV_REREG_MR_CHANGE_PD, 1, 2, 7, false), None);
        let r = rereg(t, 0x1000, 8192, 7, false).unwrap();
        assert_eq!((r.buffer, r.access, r.odp_pd), (Buffer { addr: 0x1000, len: 8192 }, 0, OdpPd::Mrs));
        let r = rereg(t | IBV_REREG_MR_CHANGE_ACCESS, 0x1000, 8192, 7, true).unwrap();
        assert_eq!((r.access, r.odp_pd), (7, OdpPd::Given));
        assert_eq!(rereg(t | IBV_REREG_MR_CHANGE_PD, 0, 0, 7, false).unwrap().odp_pd, OdpPd::Given);
        let odp = IBV_ACCESS_ON_DEMAND as c_int;
        assert_eq!(rereg_access(t, 7, true), 7, "no flags restated: none to rewrite");
        assert_eq!(rereg_access(t | IBV_REREG_MR_CHANGE_ACCESS, 7, true), 7 | odp);
        assert_eq!(rereg_access(t | IBV_REREG_MR_CHANGE_ACCESS, 7, false), 7);
    }

    #[test]
    fn reg_mr_ex_judges_address_registrations() {
        // SAFETY: plain C data; all-zero is a valid value.
        #[allow(unsafe_code)]
        let zero: ibv_mr_init_attr = unsafe { std::mem::zeroed() };
        let attr = ibv_mr_init_attr {
            addr: 0x2000 as *mut _,
            length: 4096,
            access: 1,
            comp_mask: IBV_REG_MR_MASK_ADDR,
            ..zero
        };
        assert_eq!(reg_mr_ex(&attr), Some(Buffer { addr: 0x2000, len: 4096 }));
        assert_eq!(reg_mr_ex(&ibv_mr_init_attr { comp_mask: IBV_REG_MR_MASK_ADDR | IBV_REG_MR_MASK_FD, ..attr }), None);
        assert_eq!(reg_mr_ex(&ibv_mr_init_attr { comp_mask: 0, ..attr }), None);
        assert!(reg_mr_ex_rewritten(&attr, false).is_none());
        let r = reg_mr_ex_rewritten(&attr, true).unwrap();
        assert_eq!((r.access as u32, r.addr, r.length), (1 | IBV_ACCESS_ON_DEMAND, attr.addr, 4096));
        let odp = ibv_mr_init_attr { access: 1 | IBV_ACCESS_ON_DEMAND as c_int, ..attr };
        assert!(reg_mr_ex_rewritten(&odp, true).is_none(), "already on demand: the caller's own");
    }
}
