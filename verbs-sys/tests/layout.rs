//! Checks verbs-sys against the system `<infiniband/verbs.h>` (libibverbs-dev)
//! and the installed libibverbs.so.1: a generated C program prints every size,
//! alignment, field offset and constant, whether each C prototype matches the
//! signature our `*_fn` alias spells, and whether dlvsym() finds each symbol
//! at the version we claim. Items the system header lacks (ibv_mr_init_attr,
//! from rdma-core newer than v44) are skipped with a note on stderr.

use std::ffi::CStr;
use std::io::Write;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use verbs_sys::*;

/// One C expression to print and the value the Rust side expects.
struct Check {
    what: String,
    c_expr: String,
    rust: i64,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, what: impl Into<String>, c_expr: impl Into<String>, rust: i64) {
        self.0.push(Check { what: what.into(), c_expr: c_expr.into(), rust });
    }
}

/// Size, alignment and the offset of every listed field of a struct.
/// `r#priv` is printed as `priv` for C.
macro_rules! layout {
    ($checks:ident, $cty:expr, $rty:ty { $($field:ident),* $(,)? }) => {{
        let cty: &str = $cty;
        $checks.push(format!("sizeof({cty})"), format!("sizeof({cty})"), size_of::<$rty>() as i64);
        $checks.push(format!("_Alignof({cty})"), format!("_Alignof({cty})"), align_of::<$rty>() as i64);
        $(
            let f = stringify!($field).trim_start_matches("r#");
            $checks.push(
                format!("offsetof({cty}, {f})"),
                format!("offsetof({cty}, {f})"),
                offset_of!($rty, $field) as i64,
            );
        )*
    }};
}

/// Constants whose C name equals the Rust name.
macro_rules! consts {
    ($checks:ident, $($name:ident),* $(,)?) => {
        $( $checks.push(stringify!($name), stringify!($name), $name as i64); )*
    };
}

/// Writes straight to fd 2 so the note shows even when libtest captures output.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "note: {msg}");
}

fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("verbs-sys-layout");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles `src` (only `-fsyntax-only` when `out` is None); Err(stderr) on failure.
fn cc(dir: &Path, name: &str, src: &str, out: Option<&Path>) -> Result<(), String> {
    let c = dir.join(name);
    std::fs::write(&c, src).unwrap();
    let mut cmd = Command::new("cc");
    cmd.args(["-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Werror"]).arg(&c);
    match out {
        Some(o) => cmd.arg("-o").arg(o).arg("-ldl"),
        None => cmd.arg("-fsyntax-only"),
    };
    let res = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `cc` ({e}); the layout test needs gcc/clang as `cc`"));
    if res.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&res.stderr).into_owned()) }
}

fn c_str_lit(s: &CStr) -> String {
    format!("{:?}", s.to_str().unwrap())
}

#[test]
fn layout_matches_system_header() {
    let dir = work_dir();

    if let Err(err) = cc(&dir, "probe.c", "#include <infiniband/verbs.h>\nint main(void) { return 0; }\n", None) {
        panic!(
            "cannot compile against <infiniband/verbs.h>: the layout test needs libibverbs-dev \
             (apt-get install libibverbs-dev)\ncc said:\n{err}"
        );
    }
    let has_mr_ex = cc(
        &dir,
        "probe_mr_ex.c",
        "#include <infiniband/verbs.h>\nstruct ibv_mr_init_attr probe;\nint probe_mask = IBV_REG_MR_MASK_ADDR;\n",
        None,
    )
    .is_ok();

    let mut v = Checks::default();

    layout!(v, "struct ibv_pd", ibv_pd { context, handle });
    layout!(v, "struct ibv_mr", ibv_mr { context, pd, addr, length, handle, lkey, rkey });
    layout!(v, "struct ibv_context_ops", ibv_context_ops {});
    layout!(
        v,
        "struct ibv_context",
        ibv_context { device, ops, cmd_fd, async_fd, num_comp_vectors, mutex, abi_compat }
    );
    layout!(
        v,
        "struct verbs_context",
        verbs_context {
            query_port,
            advise_mr,
            alloc_null_mr,
            read_counters,
            attach_counters_point_flow,
            create_counters,
            destroy_counters,
            reg_dm_mr,
            alloc_dm,
            free_dm,
            modify_flow_action_esp,
            destroy_flow_action,
            create_flow_action_esp,
            modify_qp_rate_limit,
            alloc_parent_domain,
            dealloc_td,
            alloc_td,
            modify_cq,
            post_srq_ops,
            destroy_rwq_ind_table,
            create_rwq_ind_table,
            destroy_wq,
            modify_wq,
            create_wq,
            query_rt_values,
            create_cq_ex,
            r#priv,
            query_device_ex,
            ibv_destroy_flow,
            ABI_placeholder2,
            ibv_create_flow,
            ABI_placeholder1,
            open_qp,
            create_qp_ex,
            get_srq_num,
            create_srq_ex,
            open_xrcd,
            close_xrcd,
            _ABI_placeholder3,
            sz,
            context
        }
    );
    layout!(v, "struct ibv_query_device_ex_input", ibv_query_device_ex_input { comp_mask });
    layout!(v, "struct ibv_odp_caps", ibv_odp_caps { general_caps, per_transport_caps });
    layout!(
        v,
        "__typeof__(((struct ibv_odp_caps *)0)->per_transport_caps)",
        ibv_odp_caps_per_transport { rc_odp_caps, uc_odp_caps, ud_odp_caps }
    );
    layout!(
        v,
        "struct ibv_device_attr",
        ibv_device_attr {
            fw_ver,
            node_guid,
            sys_image_guid,
            max_mr_size,
            page_size_cap,
            vendor_id,
            vendor_part_id,
            hw_ver,
            max_qp,
            max_qp_wr,
            device_cap_flags,
            max_sge,
            max_sge_rd,
            max_cq,
            max_cqe,
            max_mr,
            max_pd,
            max_qp_rd_atom,
            max_ee_rd_atom,
            max_res_rd_atom,
            max_qp_init_rd_atom,
            max_ee_init_rd_atom,
            atomic_cap,
            max_ee,
            max_rdd,
            max_mw,
            max_raw_ipv6_qp,
            max_raw_ethy_qp,
            max_mcast_grp,
            max_mcast_qp_attach,
            max_total_mcast_qp_attach,
            max_ah,
            max_fmr,
            max_map_per_fmr,
            max_srq,
            max_srq_wr,
            max_srq_sge,
            max_pkeys,
            local_ca_ack_delay,
            phys_port_cnt
        }
    );
    layout!(v, "struct ibv_tso_caps", ibv_tso_caps { max_tso, supported_qpts });
    layout!(
        v,
        "struct ibv_rss_caps",
        ibv_rss_caps {
            supported_qpts,
            max_rwq_indirection_tables,
            max_rwq_indirection_table_size,
            rx_hash_fields_mask,
            rx_hash_function
        }
    );
    layout!(
        v,
        "struct ibv_packet_pacing_caps",
        ibv_packet_pacing_caps { qp_rate_limit_min, qp_rate_limit_max, supported_qpts }
    );
    layout!(v, "struct ibv_tm_caps", ibv_tm_caps { max_rndv_hdr_size, max_num_tags, flags, max_ops, max_sge });
    layout!(v, "struct ibv_cq_moderation_caps", ibv_cq_moderation_caps { max_cq_count, max_cq_period });
    layout!(v, "struct ibv_pci_atomic_caps", ibv_pci_atomic_caps { fetch_add, swap, compare_swap });
    layout!(
        v,
        "struct ibv_device_attr_ex",
        ibv_device_attr_ex {
            orig_attr,
            comp_mask,
            odp_caps,
            completion_timestamp_mask,
            hca_core_clock,
            device_cap_flags_ex,
            tso_caps,
            rss_caps,
            max_wq_type_rq,
            packet_pacing_caps,
            raw_packet_caps,
            tm_caps,
            cq_mod_caps,
            max_dm_size,
            pci_atomic_caps,
            xrc_odp_caps,
            phys_port_cnt_ex
        }
    );
    if has_mr_ex {
        layout!(
            v,
            "struct ibv_mr_init_attr",
            ibv_mr_init_attr { length, access, comp_mask, iova, addr, fd, fd_offset, dmah }
        );
        consts!(
            v,
            IBV_REG_MR_MASK_IOVA,
            IBV_REG_MR_MASK_ADDR,
            IBV_REG_MR_MASK_FD,
            IBV_REG_MR_MASK_FD_OFFSET,
            IBV_REG_MR_MASK_DMAH
        );
    } else {
        note(
            "the system <infiniband/verbs.h> has no struct ibv_mr_init_attr (rdma-core older than \
             the IBVERBS_1.15 ibv_reg_mr_ex); its layout and IBV_REG_MR_MASK_* are NOT checked here",
        );
    }

    consts!(
        v,
        IBV_ACCESS_LOCAL_WRITE,
        IBV_ACCESS_REMOTE_WRITE,
        IBV_ACCESS_REMOTE_READ,
        IBV_ACCESS_REMOTE_ATOMIC,
        IBV_ACCESS_MW_BIND,
        IBV_ACCESS_ZERO_BASED,
        IBV_ACCESS_ON_DEMAND,
        IBV_ACCESS_HUGETLB,
        IBV_ACCESS_RELAXED_ORDERING,
        IBV_ACCESS_OPTIONAL_FIRST,
        IBV_ACCESS_OPTIONAL_RANGE,
        IBV_REREG_MR_CHANGE_TRANSLATION,
        IBV_REREG_MR_CHANGE_PD,
        IBV_REREG_MR_CHANGE_ACCESS,
        IBV_REREG_MR_ERR_INPUT,
        IBV_REREG_MR_ERR_DONT_FORK_NEW,
        IBV_REREG_MR_ERR_DO_FORK_OLD,
        IBV_REREG_MR_ERR_CMD,
        IBV_REREG_MR_ERR_CMD_AND_DO_FORK_NEW,
        IBV_ODP_SUPPORT,
        IBV_ODP_SUPPORT_IMPLICIT,
        IBV_ODP_SUPPORT_SEND,
        IBV_ODP_SUPPORT_RECV,
        IBV_ODP_SUPPORT_WRITE,
        IBV_ODP_SUPPORT_READ,
        IBV_ODP_SUPPORT_ATOMIC,
        IBV_ODP_SUPPORT_SRQ_RECV,
    );
    v.push("__VERBS_ABI_IS_EXTENDED", "(uintptr_t)__VERBS_ABI_IS_EXTENDED", __VERBS_ABI_IS_EXTENDED as usize as i64);

    // The C spelling of each *_fn alias must be the header's prototype.
    // `(name)` keeps the verbs.h function-like macros from expanding.
    let mut protos = vec![
        ("(ibv_reg_mr)", "struct ibv_mr *(*)(struct ibv_pd *, void *, size_t, int)"),
        ("(ibv_reg_mr_iova)", "struct ibv_mr *(*)(struct ibv_pd *, void *, size_t, uint64_t, int)"),
        ("ibv_reg_mr_iova2", "struct ibv_mr *(*)(struct ibv_pd *, void *, size_t, uint64_t, unsigned int)"),
        ("ibv_rereg_mr", "int (*)(struct ibv_mr *, int, struct ibv_pd *, void *, size_t, int)"),
        ("ibv_dereg_mr", "int (*)(struct ibv_mr *)"),
        ("ibv_get_device_list", "struct ibv_device **(*)(int *)"),
        ("ibv_free_device_list", "void (*)(struct ibv_device **)"),
        ("ibv_get_device_name", "const char *(*)(struct ibv_device *)"),
        ("ibv_open_device", "struct ibv_context *(*)(struct ibv_device *)"),
        ("ibv_close_device", "int (*)(struct ibv_context *)"),
        ("ibv_alloc_pd", "struct ibv_pd *(*)(struct ibv_context *)"),
        ("ibv_dealloc_pd", "int (*)(struct ibv_pd *)"),
        ("ibv_query_device", "int (*)(struct ibv_context *, struct ibv_device_attr *)"),
    ];
    if has_mr_ex {
        protos.push(("ibv_reg_mr_ex", "struct ibv_mr *(*)(struct ibv_pd *, struct ibv_mr_init_attr *)"));
    }
    for (f, ty) in &protos {
        v.push(format!("prototype of {f} is {ty}"), format!("__builtin_types_compatible_p(__typeof__(&{f}), {ty})"), 1);
    }
    v.push(
        "verbs_context.query_device_ex type",
        "__builtin_types_compatible_p(__typeof__(((struct verbs_context *)0)->query_device_ex), \
         int (*)(struct ibv_context *, const struct ibv_query_device_ex_input *, \
         struct ibv_device_attr_ex *, size_t))",
        1,
    );

    // Symbol versions, against the installed library.
    let versioned: &[(&CStr, &CStr)] = &[
        (c"ibv_reg_mr", IBV_REG_MR_VERSION),
        (c"ibv_reg_mr_iova", IBV_REG_MR_IOVA_VERSION),
        (c"ibv_reg_mr_iova2", IBV_REG_MR_IOVA2_VERSION),
        (c"ibv_rereg_mr", IBV_REREG_MR_VERSION),
        (c"ibv_dereg_mr", IBV_DEREG_MR_VERSION),
        (c"ibv_get_device_list", IBV_GET_DEVICE_LIST_VERSION),
        (c"ibv_free_device_list", IBV_FREE_DEVICE_LIST_VERSION),
        (c"ibv_get_device_name", IBV_GET_DEVICE_NAME_VERSION),
        (c"ibv_open_device", IBV_OPEN_DEVICE_VERSION),
        (c"ibv_close_device", IBV_CLOSE_DEVICE_VERSION),
        (c"ibv_alloc_pd", IBV_ALLOC_PD_VERSION),
        (c"ibv_dealloc_pd", IBV_DEALLOC_PD_VERSION),
        (c"ibv_query_device", IBV_QUERY_DEVICE_VERSION),
    ];
    for (name, ver) in versioned {
        v.push(
            format!("dlvsym({name:?}, {ver:?}) in libibverbs.so.1"),
            format!("dlvsym(lib, {}, {}) != NULL", c_str_lit(name), c_str_lit(ver)),
            1,
        );
    }

    // Generate, build and run the C side.
    let mut src = String::from(
        "#include <infiniband/verbs.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n\
         #include <dlfcn.h>\n\nint main(void)\n{\n\
         \tvoid *lib = dlopen(\"libibverbs.so.1\", RTLD_NOW | RTLD_LOCAL);\n\
         \tif (!lib) { fprintf(stderr, \"dlopen libibverbs.so.1: %s\\n\", dlerror()); return 1; }\n",
    );
    for (i, c) in v.0.iter().enumerate() {
        src.push_str(&format!("\tprintf(\"{i} %lld\\n\", (long long)({}));\n", c.c_expr));
    }
    let ex = c_str_lit(IBV_REG_MR_EX_VERSION);
    src.push_str(&format!(
        "\tprintf(\"mr_ex %d\\n\", dlvsym(lib, \"ibv_reg_mr_ex\", {ex}) != NULL);\n\treturn 0;\n}}\n"
    ));
    let exe = dir.join("layout");
    if let Err(err) = cc(&dir, "layout.c", &src, Some(&exe)) {
        panic!("generated layout.c does not compile ({}):\n{err}", dir.join("layout.c").display());
    }
    let out = Command::new(&exe).output().expect("run generated layout program");
    assert!(out.status.success(), "layout program failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();

    let mut c_values = vec![None; v.0.len()];
    let mut mr_ex_in_lib = false;
    for line in stdout.lines() {
        let (k, val) = line.split_once(' ').unwrap();
        if k == "mr_ex" {
            mr_ex_in_lib = val == "1";
            continue;
        }
        c_values[k.parse::<usize>().unwrap()] = Some(val.parse::<i64>().unwrap());
    }
    if !mr_ex_in_lib {
        note(&format!(
            "the installed libibverbs.so.1 has no ibv_reg_mr_ex@{}; that version string is \
             taken from upstream libibverbs.map.in, not checked here",
            IBV_REG_MR_EX_VERSION.to_str().unwrap()
        ));
    }

    let mismatches: Vec<String> =
        v.0.iter()
            .zip(&c_values)
            .filter(|(c, cv)| **cv != Some(c.rust))
            .map(|(c, cv)| format!("  {}: C {:?}, Rust {}", c.what, cv, c.rust))
            .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} checks differ from <infiniband/verbs.h> / libibverbs.so.1:\n{}",
        mismatches.len(),
        v.0.len(),
        mismatches.join("\n")
    );
    assert!(v.0.len() > 150, "suspiciously few checks: {}", v.0.len());
}

/// The DevX UMEM declarations against `<infiniband/mlx5dv.h>` and the
/// installed libmlx5.so.1 (ibverbs-providers), the same way.
#[test]
fn mlx5dv_umem_matches_system_header() {
    let dir = work_dir();
    if let Err(err) = cc(&dir, "probe_mlx5.c", "#include <infiniband/mlx5dv.h>\nint main(void) { return 0; }\n", None) {
        panic!("cannot compile against <infiniband/mlx5dv.h> (libibverbs-dev):\n{err}");
    }
    let mut v = Checks::default();
    layout!(v, "struct mlx5dv_devx_umem", mlx5dv_devx_umem { umem_id });
    layout!(
        v,
        "struct mlx5dv_devx_umem_in",
        mlx5dv_devx_umem_in { addr, size, access, pgsz_bitmap, comp_mask, dmabuf_fd }
    );
    consts!(v, MLX5DV_UMEM_MASK_DMABUF);
    for (f, ty) in [
        ("mlx5dv_devx_umem_reg", "struct mlx5dv_devx_umem *(*)(struct ibv_context *, void *, size_t, uint32_t)"),
        ("mlx5dv_devx_umem_reg_ex", "struct mlx5dv_devx_umem *(*)(struct ibv_context *, struct mlx5dv_devx_umem_in *)"),
    ] {
        v.push(format!("prototype of {f} is {ty}"), format!("__builtin_types_compatible_p(__typeof__(&{f}), {ty})"), 1);
    }
    for (name, ver) in [
        (c"mlx5dv_devx_umem_reg", MLX5DV_DEVX_UMEM_REG_VERSION),
        (c"mlx5dv_devx_umem_reg_ex", MLX5DV_DEVX_UMEM_REG_EX_VERSION),
    ] {
        v.push(
            format!("dlvsym({name:?}, {ver:?}) in libmlx5.so.1"),
            format!("dlvsym(lib, {}, {}) != NULL", c_str_lit(name), c_str_lit(ver)),
            1,
        );
    }
    let mut src = String::from(
        "#include <infiniband/mlx5dv.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n\
         #include <dlfcn.h>\n\nint main(void)\n{\n\
         \tvoid *lib = dlopen(\"libmlx5.so.1\", RTLD_NOW | RTLD_LOCAL);\n\
         \tif (!lib) { fprintf(stderr, \"dlopen libmlx5.so.1: %s\\n\", dlerror()); return 1; }\n",
    );
    for (i, c) in v.0.iter().enumerate() {
        src.push_str(&format!("\tprintf(\"{i} %lld\\n\", (long long)({}));\n", c.c_expr));
    }
    src.push_str("\treturn 0;\n}\n");
    let exe = dir.join("layout_mlx5");
    if let Err(err) = cc(&dir, "layout_mlx5.c", &src, Some(&exe)) {
        panic!("generated layout_mlx5.c does not compile:\n{err}");
    }
    let out = Command::new(&exe).output().expect("run generated mlx5 layout program");
    assert!(out.status.success(), "mlx5 layout program failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut c_values = vec![None; v.0.len()];
    for line in stdout.lines() {
        let (k, val) = line.split_once(' ').unwrap();
        c_values[k.parse::<usize>().unwrap()] = Some(val.parse::<i64>().unwrap());
    }
    let mismatches: Vec<String> =
        v.0.iter()
            .zip(&c_values)
            .filter(|(c, cv)| **cv != Some(c.rust))
            .map(|(c, cv)| format!("  {}: C {:?}, Rust {}", c.what, cv, c.rust))
            .collect();
    assert!(mismatches.is_empty(), "mlx5dv checks differ:\n{}", mismatches.join("\n"));
}
