//! The command line, as clap sees it. Parsing only: each command lives in its own module.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use daxguard::Consumer;
use daxguard::policy::Mode;

use crate::access::parse_access;
use crate::units::{parse_duration, parse_len, parse_pid, parse_size};

const MAIN_AFTER: &str = "\
Exit status: 0 registrable / all good; 1 daxguard (and Linux) would refuse it;
2 could not judge, or bad input; 3 probe: the kernel disagrees with daxguard.
`run` returns the command's own status.

Examples:
  daxguard check /mnt/pmem/buf                 # would ibv_reg_mr accept this file's memory?
  daxguard check --pid 4242 0x7f3a00000000 2M  # a range inside a running process
  daxguard scan --pid 4242 --only-dax          # every fs-DAX mapping of a process
  daxguard run -- ./my_rdma_app --port 1       # run with libdaxguard.so preloaded
  daxguard probe --device mlx5_0 /mnt/pmem/buf # ask the kernel itself, compare
  daxguard doctor                              # what this machine can do
  daxguard watch                               # every long-term pin the kernel refuses, live

--json on any command prints one JSON object (schema: docs/cli.md).";

#[derive(Parser, Debug)]
#[command(name = "daxguard", version, about = "Keep RDMA registrations away from filesystem-DAX memory")]
#[command(after_help = MAIN_AFTER, propagate_version = true)]
pub struct Cli {
    /// Print one JSON object instead of text (schema in docs/cli.md)
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Check(CheckArgs),
    Scan(ScanArgs),
    Run(RunArgs),
    Probe(ProbeArgs),
    Doctor(DoctorArgs),
    Watch(WatchArgs),
    Enable(EnableArgs),
    Disable(DisableArgs),
    Metrics(MetricsArgs),
    #[command(hide = true)]
    Generate(GenerateArgs),
}

const CHECK_AFTER: &str = "\
PATH is mapped read-only and shared, the way an RDMA program maps a file, and
the mapping is classified. A device-DAX node (/dev/daxX.Y) is mapped in units
of its alignment; its default --len is one alignment unit (usually 2 MiB).
For a file the default --len is the rest of the file from --offset.

Exit status: 0 registrable; 1 fs-DAX: daxguard and Linux refuse it (EOPNOTSUPP);
2 could not judge (unverifiable or unmapped memory) or bad input.

Examples:
  daxguard check /mnt/pmem/buf
  daxguard check --offset 1M --len 2M /mnt/pmem/buf
  daxguard check /dev/dax0.0
  daxguard check --pid 4242 0x7f3a00000000 2M
  daxguard check --json /dev/shm/ring | jq .verdict";

/// Would ibv_reg_mr accept this memory? Maps a file (or looks inside a process) and says why
#[derive(Args, Debug)]
#[command(after_help = CHECK_AFTER)]
#[command(override_usage = "daxguard check [--offset N] [--len N] PATH\n       daxguard check --pid PID ADDR LEN")]
pub struct CheckArgs {
    /// Look at ADDR LEN inside process PID instead of mapping a file
    #[arg(long, value_name = "PID", value_parser = parse_pid)]
    pub pid: Option<i32>,

    /// Offset into the file (4096, 4K, 2M, 0x1000); default 0
    #[arg(long, value_name = "N", value_parser = parse_size, conflicts_with = "pid")]
    pub offset: Option<u64>,

    /// Bytes to check; default: to the end of the file (one alignment unit for device-DAX)
    #[arg(long, value_name = "N", value_parser = parse_len, conflicts_with = "pid")]
    pub len: Option<u64>,

    /// Answer for this long-term pinner: rdma (ibv_reg_mr), v4l2 (USERPTR buffers), io_uring (fixed buffers)
    #[arg(long = "for", value_name = "CONSUMER", value_parser = consumer_parser(), default_value = "rdma")]
    pub consumer: Consumer,

    /// PATH, or with --pid: ADDR (0x hex or decimal) and LEN (4096, 4K, 2M, 1G)
    #[arg(value_name = "PATH | ADDR LEN", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
}

const SCAN_AFTER: &str = "\
Lists every mapping (VMA) of the process with its kind (anonymous, fsdax,
devdax, file, unverified, special) and what ibv_reg_mr would meet there, then
a summary line. Without --pid, scans the daxguard process itself.

Exit status: 0 no fs-DAX mapping; 1 at least one fs-DAX mapping; 2 some mapping
could not be verified, or bad input.

Examples:
  daxguard scan --pid 4242
  daxguard scan --pid \"$(pidof my_rdma_app)\" --only-dax
  daxguard scan --pid 4242 --json | jq '.summary.fsdax_bytes'";

/// List every mapping of a process with its kind and verdict
#[derive(Args, Debug)]
#[command(after_help = SCAN_AFTER)]
pub struct ScanArgs {
    /// Process to scan (default: this one); needs the rights to read /proc/PID/maps
    #[arg(long, value_name = "PID", value_parser = parse_pid)]
    pub pid: Option<i32>,

    /// Show only DAX mappings (fs-DAX, device-DAX, and those that may be fs-DAX)
    #[arg(long)]
    pub only_dax: bool,

    /// Mark the mappings this long-term pinner would be refused (rdma, v4l2, io_uring)
    #[arg(long = "for", value_name = "CONSUMER", value_parser = consumer_parser())]
    pub consumer: Option<Consumer>,
}

/// `--mode`: the library's [`Mode`]s under the library's names; only the
/// one-line help for each is the CLI's.
fn mode_parser() -> impl TypedValueParser<Value = Mode> {
    let values = Mode::ALL.map(|m| PossibleValue::new(m.name()).help(mode_help(m)));
    PossibleValuesParser::new(values).map(|name| Mode::parse(&name).expect("a name from Mode::ALL"))
}

fn mode_help(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "Refuse fs-DAX registrations (NULL, errno EOPNOTSUPP)",
        Mode::Warn => "Say what would be refused, forward anyway",
        Mode::Audit => "Forward everything; only the audit record (DAXGUARD_LOG) says what would happen",
        Mode::Off => "Forward with no lookups at all",
        Mode::Odp => "Re-register fs-DAX ranges with IBV_ACCESS_ON_DEMAND where the device can, else refuse",
    }
}

/// `--for`: the library's [`Consumer`]s under the library's names.
fn consumer_parser() -> impl TypedValueParser<Value = Consumer> {
    let values = Consumer::ALL.map(|c| PossibleValue::new(c.name()));
    PossibleValuesParser::new(values).map(|name| Consumer::parse(&name).expect("a name from Consumer::ALL"))
}

/// What the shim does when it cannot tell (`DAXGUARD_UNKNOWN`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    Refuse,
    Allow,
}

const RUN_AFTER: &str = "\
libdaxguard.so is looked for in this order: --lib, $DAXGUARD_LIB, beside the
daxguard binary, <binary dir>/../lib/<multiarch>/daxguard/ (the package's
private directory), <binary dir>/../lib/, /usr/local/lib/,
/usr/lib/<multiarch>/daxguard/, /usr/lib/. It is
appended to an existing LD_PRELOAD (which is kept first). Settings not given
here are inherited from the environment (DAXGUARD_MODE, DAXGUARD_LOG,
DAXGUARD_UNKNOWN, DAXGUARD_QUIET, DAXGUARD_STATS). daxguard replaces itself
with CMD (exec), so the exit status and signals are CMD's own; 127 if CMD is
not found, 126 if it cannot be executed.

Examples:
  daxguard run -- ib_write_bw -d mlx5_0
  daxguard run --mode warn --log /var/log/daxguard.jsonl -- ./server
  daxguard run --mode audit --log syslog -- mpirun -np 4 ./app
  daxguard run --dry-run --json -- ./app     # show what would be run";

/// Run a command with libdaxguard.so preloaded
#[derive(Args, Debug)]
#[command(after_help = RUN_AFTER)]
pub struct RunArgs {
    /// Policy for fs-DAX registrations (DAXGUARD_MODE); default: inherited, else enforce
    #[arg(long, value_parser = mode_parser())]
    pub mode: Option<Mode>,

    /// Audit log: a file (JSON lines) or `syslog` (DAXGUARD_LOG)
    #[arg(long, value_name = "DEST")]
    pub log: Option<String>,

    /// Unverifiable memory: refuse or allow (DAXGUARD_UNKNOWN)
    #[arg(long, value_enum)]
    pub unknown: Option<Unknown>,

    /// No refusal messages on stderr (DAXGUARD_QUIET=1)
    #[arg(long)]
    pub quiet: bool,

    /// Print registration statistics at exit (DAXGUARD_STATS=1)
    #[arg(long)]
    pub stats: bool,

    /// Use this libdaxguard.so
    #[arg(long, value_name = "PATH")]
    pub lib: Option<PathBuf>,

    /// Print what would be run (shim, LD_PRELOAD, settings) and exit
    #[arg(long)]
    pub dry_run: bool,

    /// The command and its arguments
    #[arg(value_name = "CMD", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<OsString>,
}

const PROBE_AFTER: &str = "\
Really registers the region on the device through libibverbs, which is loaded
at run time: every other daxguard command works without libibverbs installed;
probe needs libibverbs1 and a provider (set DAXGUARD_IBVERBS to load another
libibverbs). The kernel's answer is printed next to daxguard's prediction.

FLAGS: comma-separated names, or a number: local (local-write), remote-write,
remote-read, remote-atomic, mw-bind, zero-based, relaxed-ordering, on-demand;
shorthands: rw = local,remote-write,remote-read (the default), ro = remote-read,
none = 0. A file is mapped shared, writable when the flags include a write flag.
For a device-DAX node the default --len is one alignment unit (usually 2 MiB).

A writable shared mapping of an ordinary file is refused by Linux 6.5+ with
EFAULT: that is not a DAX matter and is reported as \"kernel refused for another
reason\" (exit 0; use --access ro to test such files).

Exit status: 0 the kernel agrees with daxguard (or refused for another reason);
2 bad input, no libibverbs, no such device; 3 the kernel disagrees.

Examples:
  daxguard probe --device rxe0 /mnt/pmem/buf        # expect: refused, EOPNOTSUPP
  daxguard probe --device rxe0 /mnt/pmem/buf --odp  # ODP is not pinned: registers
  daxguard probe --device rxe0 /dev/dax0.0
  daxguard probe --device mlx5_0 --anon --len 1M";

/// Register a region on a real RDMA device and compare the kernel's answer with daxguard's
#[derive(Args, Debug)]
#[command(after_help = PROBE_AFTER)]
pub struct ProbeArgs {
    /// RDMA device name, as in /sys/class/infiniband (e.g. mlx5_0, rxe0)
    #[arg(long, value_name = "DEV")]
    pub device: String,

    /// File or device-DAX node to map and register
    #[arg(value_name = "PATH", required_unless_present = "anon", conflicts_with = "anon")]
    pub path: Option<PathBuf>,

    /// Register private anonymous memory instead of a file
    #[arg(long)]
    pub anon: bool,

    /// Offset into the file; default 0
    #[arg(long, value_name = "N", value_parser = parse_size, conflicts_with = "anon")]
    pub offset: Option<u64>,

    /// Bytes to register; default: the rest of the file (one page for --anon)
    #[arg(long, value_name = "N", value_parser = parse_len)]
    pub len: Option<u64>,

    /// IBV_ACCESS_* flags (see below); default rw
    #[arg(long, value_name = "FLAGS", value_parser = parse_access)]
    pub access: Option<u32>,

    /// Add IBV_ACCESS_ON_DEMAND: an on-demand-paging registration, never pinned
    #[arg(long)]
    pub odp: bool,
}

const DOCTOR_AFTER: &str = "\
Each line is OK, WARN or FAIL, with a hint for what is not OK.
Exit status: 0 nothing failed; 1 something failed.

Examples:
  daxguard doctor
  daxguard doctor --json | jq '.facts.rdma_devices'";

/// Check what this machine and kernel can do, and whether `daxguard run` will work
#[derive(Args, Debug)]
#[command(after_help = DOCTOR_AFTER)]
pub struct DoctorArgs {}

const WATCH_AFTER: &str = "\
Loads a BPF program (CO-RE, fexit on pin_user_pages_fast, pin_user_pages,
pin_user_pages_remote and pin_user_pages_unlocked) and prints one line per
long-term pin the kernel refuses, from any process, with no preload: time,
pid, tid, command, uid, the consumer (rdma, devx, v4l2, io_uring, vfio,
other: named from the kernel stack), the range, the errno and what it
means, and the file the range maps (path as the kernel saw it at the
refusal, device, inode, mount). Successful pins print nothing.

Needs root, or CAP_BPF and CAP_PERFMON (CAP_SYSLOG too, to name the
consumer from /proc/kallsyms), and a kernel with BTF and BPF trampolines
(Linux 5.17+); `daxguard doctor` says whether watch can run here.
Refusals the ring buffer had no room for are counted: `dropped N`.

Exit status: 0 after --count, --duration, SIGINT or SIGTERM; 1 if the
journal (--journal) went away and stayed away; 2 if watch cannot run here
(one line says why), or bad input.

Examples:
  daxguard watch
  daxguard watch --json --comm ib_write_bw --count 1
  daxguard watch --errno EFAULT --duration 10m
  daxguard watch --journal --metrics-file /var/lib/node_exporter/textfile_collector/daxguard.prom";

/// Print every long-term pin the kernel refuses (fs-DAX and more), live, from any process
#[derive(Args, Debug)]
#[command(after_help = WATCH_AFTER)]
pub struct WatchArgs {
    /// Only refusals in this process (its thread group id)
    #[arg(long, value_name = "PID", value_parser = parse_pid)]
    pub pid: Option<i32>,

    /// Only refusals by this command name (as /proc/PID/comm shows it: at most 15 bytes)
    #[arg(long, value_name = "COMM", value_parser = parse_comm)]
    pub comm: Option<String>,

    /// Only refusals with this errno: EOPNOTSUPP (fs-DAX) or EFAULT (writable file mapping, 6.5+)
    #[arg(long, value_name = "ERRNO", value_parser = parse_watch_errno)]
    pub errno: Option<i32>,

    /// Stop after N refusals
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Stop after this long (90, 90s, 15m, 2h, 1d)
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Send each refusal to the systemd journal with DAXGUARD_* fields instead of stdout
    #[arg(long, conflicts_with = "json")]
    pub journal: bool,

    /// Keep a Prometheus textfile here (refusals by consumer and errno, dropped events)
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// Count every hooked call, refused or not, in the summary (benchmarks)
    #[arg(long, hide = true)]
    pub count_calls: bool,
}

/// `--comm`: what the kernel keeps of a command name (TASK_COMM_LEN - 1 bytes).
fn parse_comm(s: &str) -> Result<String, String> {
    match s.len() {
        0 => Err("empty command name".into()),
        1..=15 => Ok(s.to_string()),
        n => Err(format!("'{s}' is {n} bytes; the kernel keeps at most 15 of a command name")),
    }
}

/// `--errno`: the two errnos a long-term pin refusal has, by name or number.
fn parse_watch_errno(s: &str) -> Result<i32, String> {
    match s.to_ascii_uppercase().as_str() {
        "EOPNOTSUPP" | "95" => Ok(libc::EOPNOTSUPP),
        "EFAULT" | "14" => Ok(libc::EFAULT),
        _ => Err(format!("'{s}': a refused long-term pin is EOPNOTSUPP or EFAULT")),
    }
}

const ENABLE_AFTER: &str = "\
--unit NAME writes /etc/systemd/system/NAME.d/daxguard.conf, a drop-in that
sets LD_PRELOAD to libdaxguard.so (and DAXGUARD_MODE with --mode) for that
service only; NAME without a suffix means NAME.service. It replaces an
LD_PRELOAD the unit sets itself. Then: systemctl daemon-reload and restart
the service; `systemctl cat NAME` shows the drop-in.

--host appends libdaxguard.so to /etc/ld.so.preload, if it is not there: it
then applies to EVERY process on the host, setuid programs included (they
ignore the environment and run with the defaults: enforce). Before writing,
the library is loaded once into `daxguard --version` to check it loads cleanly.
`daxguard disable --host` leaves the file byte for byte as it was.

The library is the one `daxguard run` would use (see `daxguard run --help`),
or --lib. --root DIR acts on the system under DIR (an image, a chroot);
there --lib is required and is the path as seen inside DIR.

Examples:
  daxguard enable --unit postgresql --mode warn
  daxguard enable --host
  daxguard enable --root /srv/image --lib /usr/lib/x86_64-linux-gnu/daxguard/libdaxguard.so --host";

/// Turn daxguard on for one systemd service (a drop-in) or every process of the host (/etc/ld.so.preload)
#[derive(Args, Debug)]
#[command(after_help = ENABLE_AFTER)]
#[command(group(ArgGroup::new("scope").required(true).args(["unit", "host"])))]
pub struct EnableArgs {
    /// Preload into this systemd unit only, with a drop-in
    #[arg(long, value_name = "NAME")]
    pub unit: Option<String>,

    /// Preload into every process of the host (/etc/ld.so.preload)
    #[arg(long)]
    pub host: bool,

    /// With --unit: the service's DAXGUARD_MODE
    #[arg(long, value_parser = mode_parser(), conflicts_with = "host")]
    pub mode: Option<Mode>,

    /// Use this libdaxguard.so
    #[arg(long, value_name = "PATH")]
    pub lib: Option<PathBuf>,

    /// Act on the system under DIR instead of /
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

const DISABLE_AFTER: &str = "\
--unit NAME removes the drop-in `daxguard enable --unit NAME` wrote (only a
file daxguard wrote). --host takes out of /etc/ld.so.preload exactly the line
`enable --host` appended, with the newline it added, and the file if daxguard
created it. --all does both, for every unit with a daxguard drop-in (the
package runs it when it is removed). Nothing to remove is not an error.

Examples:
  daxguard disable --unit postgresql
  daxguard disable --host";

/// Turn off what `daxguard enable` turned on, leaving the files as they were
#[derive(Args, Debug)]
#[command(after_help = DISABLE_AFTER)]
#[command(group(ArgGroup::new("scope").required(true).args(["unit", "host", "all"])))]
pub struct DisableArgs {
    /// Remove this unit's daxguard drop-in
    #[arg(long, value_name = "NAME")]
    pub unit: Option<String>,

    /// Take libdaxguard.so out of /etc/ld.so.preload
    #[arg(long)]
    pub host: bool,

    /// --host and every unit's daxguard drop-in
    #[arg(long)]
    pub all: bool,

    /// Act on the system under DIR instead of /
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

const METRICS_AFTER: &str = "\
Reads the JSON-lines audit logs the preload library writes (DAXGUARD_LOG=PATH,
or `log = PATH` in /etc/daxguard/daxguard.conf) and counts the registrations
it refused and those it only warned about (warn and audit modes), by program,
file, consumer and mode, plus every record by consumer and action: a
Prometheus textfile for node_exporter's textfile collector. With no LOG, or
LOG -, reads standard input. The counts are of the records read: give every
rotated log that should count (LOG LOG.1 ...).

--textfile replaces PATH whole (a temporary file beside it, fsynced, renamed;
mode 0644), so a scrape never reads half of it; without it the text goes to
standard output. Lines that are not records are counted
(daxguard_audit_unreadable_lines_total), never fatal. Exit status: 0; 2 if a
log cannot be read or the textfile cannot be written.

Examples:
  daxguard metrics --textfile /var/lib/prometheus/node-exporter/daxguard.prom /var/log/daxguard.jsonl
  daxguard metrics /var/log/daxguard.jsonl /var/log/daxguard.jsonl.1
  daxguard metrics --json < /var/log/daxguard.jsonl | jq .refusals";

/// Count refusals and warnings in audit logs, as a Prometheus textfile (node_exporter)
#[derive(Args, Debug)]
#[command(after_help = METRICS_AFTER)]
pub struct MetricsArgs {
    /// Write the textfile here (replaced whole, mode 0644) instead of standard output
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,

    /// JSON-lines audit logs (DAXGUARD_LOG=PATH); none or -: standard input
    #[arg(value_name = "LOG")]
    pub logs: Vec<PathBuf>,
}

/// What `daxguard generate` writes (packaging: see tools/dist/build-deb).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generated {
    /// daxguard(1), daxguard-SUBCOMMAND(1) and daxguard(7), in DIR/man
    Man,
    /// bash, zsh and fish completions, in DIR/completions
    Completions,
    /// daxguard.pc for C programs that call daxguard_check(), in DIR/pkgconfig
    Pkgconfig,
    /// The CDI spec for containers (daxguard.io/preload), in DIR/cdi/daxguard.json
    Cdi,
    /// All of the above
    All,
}

/// Write the man pages, shell completions and pkg-config file (for packaging)
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[arg(value_enum)]
    pub what: Generated,

    /// Directory to write into (created)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The install prefix daxguard.pc and the CDI spec name
    #[arg(long, value_name = "DIR", default_value = "/usr")]
    pub prefix: PathBuf,
}
