//! `verbs::args`: what `ibv_rereg_mr`'s flags and `ibv_reg_mr_ex`'s
//! `struct ibv_mr_init_attr` ask the guard to judge, and what is passed on.
//!
//! The input, little-endian, zero-padded: rereg `flags` (i32), `access`
//! (i32), `addr` (u64), `length` (u64), a byte of switches (bit 0: `mr`
//! is NULL; bit 1: the guard asks for an on-demand pin), then
//! `comp_mask` (u64), `fd` (i32), `iova` (u64), `fd_offset` (u64) for
//! `ibv_reg_mr_ex` (which reuses `addr`, `length`, `access`).
//! Invariants: never panics; a range is judged only when the call pins one
//! (`IBV_REREG_MR_CHANGE_TRANSLATION`; `IBV_REG_MR_MASK_ADDR` without
//! `_FD`), and it is exactly the range given; access flags passed on are
//! the caller's, plus `IBV_ACCESS_ON_DEMAND` only when an on-demand pin
//! was asked and the call restates them; a rewritten `ibv_mr_init_attr`
//! differs from the caller's in `access` alone.
#![no_main]

use std::ffi::c_int;

use daxguard::Buffer;
use daxguard::verbs::args::{OdpPd, reg_mr_ex, reg_mr_ex_rewritten, rereg, rereg_access};
use libfuzzer_sys::fuzz_target;
use verbs_sys::ibv_mr_init_attr;

const TRANSLATION: c_int = 1;
const PD: c_int = 2;
const ACCESS: c_int = 4;
const ODP: u32 = 1 << 6;
const MASK_ADDR: u64 = 1 << 1;
const MASK_FD: u64 = 1 << 2;

fuzz_target!(|data: &[u8]| {
    let mut b = [0u8; 57];
    let n = data.len().min(b.len());
    b[..n].copy_from_slice(&data[..n]);
    let i32_at = |at: usize| i32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (flags, access, addr, length) = (i32_at(0), i32_at(4), u64_at(8), u64_at(16));
    let (mr_is_null, on_demand) = (b[24] & 1 != 0, b[24] & 2 != 0);
    let (comp_mask, fd, iova, fd_offset) = (u64_at(25), i32_at(33), u64_at(37), u64_at(45));

    // ibv_rereg_mr
    let judged = rereg(flags, addr, length, access, mr_is_null);
    assert_eq!(judged.is_some(), flags & TRANSLATION != 0, "judged without a new translation, or missed one");
    if let Some(r) = judged {
        assert_eq!(r.buffer, Buffer { addr, len: length }, "judged a range the call did not give");
        assert_eq!(r.access, if flags & ACCESS != 0 { access as u32 } else { 0 });
        let given = flags & PD != 0 || mr_is_null;
        assert_eq!(r.odp_pd, if given { OdpPd::Given } else { OdpPd::Mrs }, "would read a NULL mr's pd");
    }
    let passed = rereg_access(flags, access, on_demand);
    let want = if flags & ACCESS != 0 && on_demand { access | ODP as c_int } else { access };
    assert_eq!(passed, want, "rereg access passed on");
    assert_eq!(passed & access, access, "a caller's access bit dropped");

    // ibv_reg_mr_ex
    // SAFETY: plain C data; all-zero is a valid value.
    let zero: ibv_mr_init_attr = unsafe { std::mem::zeroed() };
    let attr = ibv_mr_init_attr {
        length: length as usize,
        access,
        comp_mask,
        iova,
        addr: addr as usize as *mut _,
        fd,
        fd_offset,
        ..zero
    };
    let range = reg_mr_ex(&attr);
    let pins = comp_mask & MASK_ADDR != 0 && comp_mask & MASK_FD == 0;
    assert_eq!(range.is_some(), pins, "comp_mask {comp_mask:#x}");
    if let Some(r) = range {
        assert_eq!(r, Buffer { addr, len: length }, "judged a range the attributes did not give");
    }
    match reg_mr_ex_rewritten(&attr, on_demand) {
        None => assert!(!on_demand || access as u32 & ODP != 0, "an asked rewrite was dropped"),
        Some(w) => {
            assert!(on_demand && access as u32 & ODP == 0);
            assert_eq!(w.access as u32, access as u32 | ODP);
            let same = (w.length, w.comp_mask, w.iova, w.addr, w.fd, w.fd_offset, w.dmah);
            assert_eq!(same, (attr.length, attr.comp_mask, attr.iova, attr.addr, attr.fd, attr.fd_offset, attr.dmah));
        }
    }
});
