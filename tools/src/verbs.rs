//! libibverbs, loaded at run time: the binary has no DT_NEEDED on it, so every
//! command but `probe` (and doctor's ODP line) works where it is not installed.
//!
//! Functions are looked up with `dlvsym` in the library's own handle, at the
//! versions verbs-sys names: a libdaxguard.so preloaded into this process is
//! not in that lookup scope, so `probe` always talks to the real libibverbs.
//!
//! # Safety
//! Calls through function pointers resolved from libibverbs at the exact
//! symbol versions whose signatures verbs-sys declares; every object passed
//! back to libibverbs came from it and is released once.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_void};
use std::mem::MaybeUninit;

use anyhow::bail;
use serde::Serialize;
use verbs_sys as v;

/// What to dlopen: `$DAXGUARD_IBVERBS` (another rdma-core build), else the soname.
pub fn library_name() -> String {
    std::env::var("DAXGUARD_IBVERBS").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "libibverbs.so.1".into())
}

pub struct Verbs {
    /// The file the loader picked.
    pub path: String,
    get_device_list: v::ibv_get_device_list_fn,
    free_device_list: v::ibv_free_device_list_fn,
    get_device_name: v::ibv_get_device_name_fn,
    open_device: v::ibv_open_device_fn,
    close_device: v::ibv_close_device_fn,
    alloc_pd: v::ibv_alloc_pd_fn,
    dealloc_pd: v::ibv_dealloc_pd_fn,
    reg_mr: v::ibv_reg_mr_fn,
    reg_mr_iova2: Option<v::ibv_reg_mr_iova2_fn>,
    dereg_mr: v::ibv_dereg_mr_fn,
}

/// `dlvsym` as a typed function pointer.
///
/// # Safety
/// `F` must be the function-pointer type of `name@version`.
unsafe fn sym<F: Copy>(handle: *mut c_void, name: &CStr, version: &CStr) -> Option<F> {
    assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
    // SAFETY: valid handle and NUL-terminated strings.
    let p = unsafe { libc::dlvsym(handle, name.as_ptr(), version.as_ptr()) };
    // SAFETY: the caller vouches for the type; a non-null symbol is a function of it.
    (!p.is_null()).then(|| unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

fn dlerror() -> String {
    // SAFETY: no preconditions.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        return String::new();
    }
    // SAFETY: a non-null dlerror() is a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
}

/// The errno of the call that just failed.
fn errno() -> i32 {
    daxguard::Errno::last().raw()
}

impl Verbs {
    /// dlopen + dlvsym. The error says what to install.
    pub fn load() -> anyhow::Result<Verbs> {
        let name = library_name();
        let c_name = CString::new(name.clone())?;
        // SAFETY: NUL-terminated name; libibverbs has no unsafe constructors.
        let h = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if h.is_null() {
            let why = dlerror();
            let why = if why.contains("No such file") || why.is_empty() { String::new() } else { format!(" ({why})") };
            bail!("{name} not found: install libibverbs1 (and a provider){why}");
        }
        macro_rules! need {
            ($sym:literal, $ver:expr) => {
                // SAFETY: the verbs-sys type for this symbol at this version.
                match unsafe { sym(h, $sym, $ver) } {
                    Some(f) => f,
                    None => bail!(
                        "{name} has no {}@{}: too old or not libibverbs",
                        $sym.to_string_lossy(),
                        $ver.to_string_lossy()
                    ),
                }
            };
        }
        let get_device_list: v::ibv_get_device_list_fn = need!(c"ibv_get_device_list", v::IBV_GET_DEVICE_LIST_VERSION);
        Ok(Verbs {
            path: loaded_from(get_device_list as *const c_void).unwrap_or(name.clone()),
            get_device_list,
            free_device_list: need!(c"ibv_free_device_list", v::IBV_FREE_DEVICE_LIST_VERSION),
            get_device_name: need!(c"ibv_get_device_name", v::IBV_GET_DEVICE_NAME_VERSION),
            open_device: need!(c"ibv_open_device", v::IBV_OPEN_DEVICE_VERSION),
            close_device: need!(c"ibv_close_device", v::IBV_CLOSE_DEVICE_VERSION),
            alloc_pd: need!(c"ibv_alloc_pd", v::IBV_ALLOC_PD_VERSION),
            dealloc_pd: need!(c"ibv_dealloc_pd", v::IBV_DEALLOC_PD_VERSION),
            reg_mr: need!(c"ibv_reg_mr", v::IBV_REG_MR_VERSION),
            // SAFETY: the verbs-sys type for this symbol at this version.
            reg_mr_iova2: unsafe { sym(h, c"ibv_reg_mr_iova2", v::IBV_REG_MR_IOVA2_VERSION) },
            dereg_mr: need!(c"ibv_dereg_mr", v::IBV_DEREG_MR_VERSION),
        })
        // The handle is never closed: providers do not all survive dlclose.
    }

    /// Runs `f` over the device list; the list is freed afterwards.
    fn with_devices<R>(&self, f: impl FnOnce(&[*mut v::ibv_device]) -> R) -> (R, i32) {
        let mut n = 0;
        // SAFETY: `n` is a valid out-pointer.
        let list = unsafe { (self.get_device_list)(&mut n) };
        if list.is_null() {
            // ENOSYS: no kernel RDMA support at all; treat as no devices.
            let e = errno();
            return (f(&[]), e);
        }
        // SAFETY: libibverbs returns `n` valid entries.
        let devs = unsafe { std::slice::from_raw_parts(list, usize::try_from(n).unwrap_or(0)) };
        let r = f(devs);
        // SAFETY: the list came from ibv_get_device_list and is freed once.
        unsafe { (self.free_device_list)(list) };
        (r, 0)
    }

    fn name_of(&self, d: *mut v::ibv_device) -> String {
        // SAFETY: `d` is from the current device list.
        let n = unsafe { (self.get_device_name)(d) };
        if n.is_null() {
            return String::new();
        }
        // SAFETY: a non-null name is NUL-terminated and lives as long as the device list.
        unsafe { CStr::from_ptr(n) }.to_string_lossy().into_owned()
    }

    /// Opens device `name`; unknown names get the list of devices present.
    pub fn open(&self, name: &str) -> anyhow::Result<Device<'_>> {
        let (r, list_errno) = self.with_devices(|devs| {
            let names: Vec<String> = devs.iter().map(|&d| self.name_of(d)).collect();
            let Some(i) = names.iter().position(|n| n == name) else { return Err(names) };
            // SAFETY: `devs[i]` is from the live list; the context outlives the list.
            let ctx = unsafe { (self.open_device)(devs[i]) };
            Ok((ctx, errno()))
        });
        match r {
            Err(names) if names.is_empty() => {
                let why = match list_errno {
                    0 => String::new(),
                    libc::ENOSYS => " (no RDMA support in the kernel: load ib_uverbs and a driver)".to_string(),
                    e => format!(" ({})", crate::output::errno_text(e)),
                };
                bail!("no RDMA device named {name}: no RDMA devices present{why}")
            }
            Err(names) => bail!("no RDMA device named {name} (present: {})", names.join(", ")),
            Ok((ctx, e)) if ctx.is_null() => bail!("cannot open RDMA device {name}: {}", crate::output::errno_text(e)),
            Ok((ctx, _)) => Ok(Device { verbs: self, ctx }),
        }
    }
}

/// The file a loaded symbol lives in (dladdr), e.g. /lib/x86_64-linux-gnu/libibverbs.so.1.
fn loaded_from(addr: *const c_void) -> Option<String> {
    let mut info = MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: `info` is a valid out-pointer.
    if unsafe { libc::dladdr(addr, info.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: dladdr succeeded and filled `info`.
    let f = unsafe { info.assume_init() }.dli_fname;
    // SAFETY: a NUL-terminated path owned by the loader.
    (!f.is_null()).then(|| unsafe { CStr::from_ptr(f) }.to_string_lossy().into_owned())
}

/// An open device; closed on drop.
pub struct Device<'v> {
    verbs: &'v Verbs,
    ctx: *mut v::ibv_context,
}

impl Drop for Device<'_> {
    fn drop(&mut self) {
        // SAFETY: opened by ibv_open_device, closed once.
        unsafe { (self.verbs.close_device)(self.ctx) };
    }
}

/// A registration the kernel accepted (already deregistered).
pub struct Registered {
    pub lkey: u32,
    pub rkey: u32,
}

impl Device<'_> {
    /// ODP capabilities from ibv_query_device_ex, if the provider has it.
    pub fn odp_caps(&self) -> Option<v::ibv_odp_caps> {
        // SAFETY: `ctx` is a live context from ibv_open_device.
        let query = unsafe { v::verbs_get_ctx_query_device_ex(self.ctx) }?;
        let input = v::ibv_query_device_ex_input::default();
        // SAFETY: plain old data; the provider fills it.
        let mut attr: v::ibv_device_attr_ex = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: live context, valid in/out pointers, our struct's size.
        let rc = unsafe { query(self.ctx, &input, &mut attr, size_of::<v::ibv_device_attr_ex>()) };
        (rc == 0).then_some(attr.odp_caps)
    }

    /// Registers `[addr, addr + len)` the way the verbs.h macro does
    /// (`ibv_reg_mr_iova2` with iova = addr), then deregisters it.
    /// `Ok(Err(errno))` is the kernel's refusal; `Err` is a failure around it.
    pub fn register(&self, addr: u64, len: u64, access: u32) -> anyhow::Result<Result<Registered, i32>> {
        // SAFETY: live context.
        let pd = unsafe { (self.verbs.alloc_pd)(self.ctx) };
        if pd.is_null() {
            bail!("ibv_alloc_pd failed: {}", crate::output::errno_text(errno()));
        }
        let len_usize = usize::try_from(len)?;
        let ptr = addr as *mut c_void;
        // Clear errno so a provider that forgets to set it cannot show a stale one.
        // SAFETY: this thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `pd` is live; the range is a mapping owned by the caller for this call.
        let mr = unsafe {
            match self.verbs.reg_mr_iova2 {
                Some(f) => f(pd, ptr, len_usize, addr, access),
                None => (self.verbs.reg_mr)(pd, ptr, len_usize, access as i32),
            }
        };
        let result = if mr.is_null() {
            Err(errno())
        } else {
            // SAFETY: a live MR from libibverbs.
            let (lkey, rkey) = unsafe { ((*mr).lkey, (*mr).rkey) };
            // SAFETY: the MR is deregistered once and not used after.
            unsafe { (self.verbs.dereg_mr)(mr) };
            Ok(Registered { lkey, rkey })
        };
        // SAFETY: `pd` is live and no MR uses it any more.
        unsafe { (self.verbs.dealloc_pd)(pd) };
        Ok(result)
    }
}

/// `ibv_odp_caps` as `probe` and `doctor` print it in JSON.
#[derive(Serialize)]
pub struct OdpJson {
    pub supported: bool,
    pub implicit: bool,
    pub general_caps: u64,
    pub rc_odp_caps: u32,
    pub uc_odp_caps: u32,
    pub ud_odp_caps: u32,
}

pub fn odp_json(c: &v::ibv_odp_caps) -> OdpJson {
    OdpJson {
        supported: c.general_caps & v::IBV_ODP_SUPPORT != 0,
        implicit: c.general_caps & v::IBV_ODP_SUPPORT_IMPLICIT != 0,
        general_caps: c.general_caps,
        rc_odp_caps: c.per_transport_caps.rc_odp_caps,
        uc_odp_caps: c.per_transport_caps.uc_odp_caps,
        ud_odp_caps: c.per_transport_caps.ud_odp_caps,
    }
}
