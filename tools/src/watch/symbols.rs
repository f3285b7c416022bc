//! Kernel addresses to names, and names to a consumer. The BPF program sends
//! the kernel stack of each refusal (`bpf_get_stack()`); the frames above
//! the hooked GUP function say who asked for the pin: `ib_umem_get` (RDMA),
//! DevX (mlx5's `mlx5_ib_handler_MLX5_IB_METHOD_DEVX_UMEM_REG`, which calls
//! ib_umem_get in turn; its `devx_umem_get` is inlined), `get_vaddr_frames`
//! (V4L2 videobuf2), `io_pin_pages` (io_uring), `vaddr_get_pfns` (VFIO
//! type1) or `iommufd`'s pinning.
//!
//! Names come from /proc/kallsyms, read only when an address is new (a
//! burst of refusals from one call site reads it once) and cached; modules
//! loaded later are found at the next new address. No table of every
//! symbol is kept, so memory stays small.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::rc::Rc;

/// Who asked for the long-term pin, from the kernel stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Consumer {
    Rdma,
    Devx,
    V4l2,
    IoUring,
    Vfio,
    Other,
}

impl Consumer {
    pub const ALL: [Consumer; 6] =
        [Consumer::Rdma, Consumer::Devx, Consumer::V4l2, Consumer::IoUring, Consumer::Vfio, Consumer::Other];

    /// The name in text, JSON, the journal and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Consumer::Rdma => "rdma",
            Consumer::Devx => "devx",
            Consumer::V4l2 => "v4l2",
            Consumer::IoUring => "io_uring",
            Consumer::Vfio => "vfio",
            Consumer::Other => "other",
        }
    }

    /// Which consumer a function belongs to, if it is one of the pinners.
    fn of_function(name: &str) -> Option<Consumer> {
        // mlx5 DevX registers user memory through ib_umem_get(): look for it
        // first. devx_umem_get() is static and inlined into the ioctl
        // method's handler, whose name comes from UVERBS_HANDLER():
        // mlx5_ib_handler_MLX5_IB_METHOD_DEVX_UMEM_REG, DEVX in capitals.
        if name.contains("devx") || name.contains("_DEVX_") {
            return Some(Consumer::Devx);
        }
        if name.starts_with("ib_umem_") {
            return Some(Consumer::Rdma);
        }
        if name == "get_vaddr_frames" || name.starts_with("vb2_") {
            return Some(Consumer::V4l2);
        }
        if name == "io_pin_pages" || name.starts_with("io_sqe_buffer") || name.starts_with("io_buffer_") {
            return Some(Consumer::IoUring);
        }
        if name.starts_with("vfio_")
            || name.starts_with("vaddr_get_pfn")
            || name.starts_with("iommufd_")
            || name.starts_with("pfn_reader_")
        {
            return Some(Consumer::Vfio);
        }
        None
    }

    /// The consumer of a stack (innermost frame first): DevX wherever it is,
    /// else the innermost frame that belongs to a pinner.
    pub fn of_stack(frames: &[Frame]) -> Consumer {
        let found: Vec<Consumer> = frames.iter().filter_map(|f| Consumer::of_function(&f.function)).collect();
        if found.contains(&Consumer::Devx) {
            return Consumer::Devx;
        }
        found.first().copied().unwrap_or(Consumer::Other)
    }
}

/// One resolved return address: `ib_umem_get+0x1b4 [ib_core]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub function: Rc<str>,
    pub offset: u64,
    pub module: Option<Rc<str>>,
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{:#x}", self.function, self.offset)?;
        if let Some(m) = &self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

impl Frame {
    /// The BPF program's own frames and the trampoline's: not the caller.
    pub fn is_bpf(&self) -> bool {
        self.module.as_deref() == Some("bpf") || self.function.starts_with("bpf_")
    }
}

/// The caller: the frame right above the hooked function, or above the BPF
/// frames if the hooked function itself does not show.
pub fn caller<'a>(frames: &'a [Frame], hooked: &str) -> Option<&'a Frame> {
    if let Some(i) = frames.iter().position(|f| &*f.function == hooked) {
        return frames.get(i + 1);
    }
    frames.iter().find(|f| !f.is_bpf())
}

/// The most addresses cached before the cache is emptied (distinct call sites).
const CACHE_MAX: usize = 4096;

/// Address -> frame, asking /proc/kallsyms for addresses not seen before.
pub struct Symbols {
    cache: HashMap<u64, Option<Frame>>,
    path: &'static str,
    /// kallsyms showed only zero addresses: kptr_restrict hides them from us.
    pub hidden: bool,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols { cache: HashMap::new(), path: "/proc/kallsyms", hidden: false }
    }
}

impl Symbols {
    /// The frames of `addrs`, innermost first; unknown addresses are skipped.
    pub fn frames(&mut self, addrs: &[u64]) -> Vec<Frame> {
        let new: Vec<u64> = addrs.iter().copied().filter(|a| !self.cache.contains_key(a)).collect();
        if !new.is_empty() && !self.hidden {
            if self.cache.len() + new.len() > CACHE_MAX {
                self.cache.clear();
            }
            match std::fs::File::open(self.path) {
                Ok(f) => self.resolve(BufReader::new(f), &new),
                Err(_) => self.hidden = true,
            }
        }
        addrs.iter().filter_map(|a| self.cache.get(a).cloned().flatten()).collect()
    }

    /// One pass over kallsyms: for each address, the closest text symbol at
    /// or below it (kallsyms is not sorted across modules).
    fn resolve(&mut self, kallsyms: impl BufRead, addrs: &[u64]) {
        let mut best: Vec<Option<(u64, String, Option<String>)>> = vec![None; addrs.len()];
        let mut any_address = false;
        for line in kallsyms.lines() {
            let Ok(line) = line else { break };
            let mut it = line.split_ascii_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else { continue };
            let Ok(addr) = u64::from_str_radix(addr, 16) else { continue };
            any_address |= addr != 0;
            if !matches!(kind, "t" | "T" | "w" | "W") || addr == 0 {
                continue;
            }
            for (i, &a) in addrs.iter().enumerate() {
                if addr <= a && best[i].as_ref().is_none_or(|b| addr > b.0) {
                    let module = it.clone().next().map(|m| m.trim_matches(|c| c == '[' || c == ']').to_string());
                    best[i] = Some((addr, name.to_string(), module));
                }
            }
        }
        if !any_address {
            self.hidden = true;
            return;
        }
        for (a, b) in addrs.iter().zip(best) {
            let frame = b.map(|(at, function, module)| Frame {
                function: function.into(),
                offset: a - at,
                module: module.map(Into::into),
            });
            self.cache.insert(*a, frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff812c7900 T pin_user_pages_fast
ffffffff812c7a00 t gup_fast_fallback
ffffffffc0100000 t ib_umem_get\t[ib_core]
ffffffffc0100400 t ib_umem_release\t[ib_core]
ffffffffc0200000 t mlx5_ib_handler_MLX5_IB_METHOD_DEVX_UMEM_REG\t[mlx5_ib]
ffffffffc0200800 t mlx5_ib_handler_MLX5_IB_METHOD_DEVX_UMEM_DEREG\t[mlx5_ib]
ffffffffc0400000 t ib_uverbs_run_method\t[ib_uverbs]
ffffffffc0400900 t ib_uverbs_cmd_verbs\t[ib_uverbs]
ffffffffc0300000 t bpf_prog_6deef7357e7b4530_watch_fast\t[bpf]
ffffffffc0310000 t bpf_trampoline_6442491334\t[bpf]
ffffffff81a00000 d some_data
";

    fn symbols(text: &str, addrs: &[u64]) -> (Symbols, Vec<Frame>) {
        let mut s = Symbols::default();
        s.resolve(text.as_bytes(), addrs);
        let frames = addrs.iter().filter_map(|a| s.cache.get(a).cloned().flatten()).collect();
        (s, frames)
    }

    #[test]
    fn resolves_to_the_closest_text_symbol_below() {
        let (_, f) = symbols(KALLSYMS, &[0xffffffffc0100123, 0xffffffff812c7905, 0xffffffff81a00010]);
        assert_eq!(f[0].to_string(), "ib_umem_get+0x123 [ib_core]");
        assert_eq!(f[1].to_string(), "pin_user_pages_fast+0x5");
        // Data symbols are skipped: the text symbol below wins.
        assert_eq!(&*f[2].function, "gup_fast_fallback");
    }

    #[test]
    fn hidden_addresses_are_noticed() {
        let (s, f) =
            symbols("0000000000000000 T _stext\n0000000000000000 T pin_user_pages_fast\n", &[0xffffffff812c7905]);
        assert!(s.hidden && f.is_empty());
    }

    /// A DevX UMEM registration as 6.1-6.18 show it: devx_umem_get() is
    /// inlined, so the handler of the ioctl method names DevX; the caller
    /// is still ib_umem_get.
    #[test]
    fn devx_is_named_from_the_umem_reg_handler() {
        let addrs = [
            0xffffffffc0300010, // the BPF program
            0xffffffffc0310010, // its trampoline
            0xffffffff812c7905, // pin_user_pages_fast
            0xffffffffc0100123, // ib_umem_get
            0xffffffffc02001a4, // mlx5_ib_handler_MLX5_IB_METHOD_DEVX_UMEM_REG
            0xffffffffc0400187, // ib_uverbs_run_method
            0xffffffffc0400a21, // ib_uverbs_cmd_verbs
        ];
        let mut s = Symbols::default();
        s.resolve(KALLSYMS.as_bytes(), &addrs);
        let f = s.frames(&addrs);
        assert_eq!(f.len(), addrs.len());
        assert_eq!(f[4].to_string(), "mlx5_ib_handler_MLX5_IB_METHOD_DEVX_UMEM_REG+0x1a4 [mlx5_ib]");
        assert_eq!(Consumer::of_stack(&f), Consumer::Devx);
        assert_eq!(caller(&f, "pin_user_pages_fast").unwrap().to_string(), "ib_umem_get+0x123 [ib_core]");
        // Plain verbs (ibv_reg_mr) reach ib_umem_get from ib_uverbs: RDMA.
        let verbs: Vec<Frame> = f.iter().filter(|fr| !fr.function.contains("DEVX")).cloned().collect();
        assert_eq!(Consumer::of_stack(&verbs), Consumer::Rdma);
    }

    #[test]
    fn consumers_and_callers() {
        let addrs =
            [0xffffffffc0300010, 0xffffffffc0310010, 0xffffffff812c7905, 0xffffffffc0100123, 0xffffffffc0200050];
        let (_, f) = symbols(KALLSYMS, &addrs);
        assert_eq!(caller(&f, "pin_user_pages_fast").unwrap().to_string(), "ib_umem_get+0x123 [ib_core]");
        assert_eq!(Consumer::of_stack(&f), Consumer::Devx, "DevX wins wherever it is");
        assert_eq!(Consumer::of_stack(&f[..4]), Consumer::Rdma);
        assert_eq!(Consumer::of_stack(&f[..3]), Consumer::Other);
        // Without the hooked function in the stack: the first non-BPF frame.
        assert_eq!(
            &*caller(&f[..2].iter().chain(&f[3..]).cloned().collect::<Vec<_>>(), "x").unwrap().function,
            "ib_umem_get"
        );
        for (name, c) in [
            ("mlx5_ib_handler_MLX5_IB_METHOD_DEVX_UMEM_REG", Consumer::Devx),
            ("get_vaddr_frames", Consumer::V4l2),
            ("io_pin_pages", Consumer::IoUring),
            ("io_sqe_buffers_register", Consumer::IoUring),
            ("vaddr_get_pfns", Consumer::Vfio),
            ("iommufd_access_pin_pages", Consumer::Vfio),
        ] {
            assert_eq!(Consumer::of_function(name), Some(c), "{name}");
        }
    }
}
