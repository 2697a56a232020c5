//! The exec guard: an eBPF LSM program on `bprm_check_security` for the execs
//! fanotify cannot see (filesystems without a vigil mark, memfds).
//!
//! Owns loading the program (`bpf/guard.bpf.c`, compiled by clang in
//! `build.rs`, embedded, loaded with aya), filling its maps from the
//! configuration, and handing out its ring buffer. The program decides at once
//! (a BPF program cannot wait for user space); the daemon (`daemon::guard`)
//! reads the reports, logs them and marks the filesystem so the next exec from
//! it is scanned.
//!
//! Never pinned: the program and its link live as long as the daemon's file
//! descriptors, so a crash or a `kill` detaches it and the machine is back to
//! plain fanotify. The link is attached only after the `covered` map holds
//! every superblock that is marked or mounted at start, so the guard never sees
//! an empty map.
//!
//! aya was chosen over libbpf-rs because it is pure Rust (no libbpf C build,
//! no libelf/zlib at build or run time) and needs only clang at build time;
//! see docs/guard.md for what was measured.

pub mod abi;
pub mod kernel;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use aya::maps::{Array, HashMap, MapData, RingBuf};
use aya::programs::{BtfTracePoint, Lsm, Program, ProgramError};
use aya::{Btf, Ebpf, EbpfLoader};
use vigil_policy::{Config, GuardMode};

/// The compiled program, aligned for the ELF parser.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard.bpf.o"));
/// The program on `bprm_check_security`.
const LSM_PROGRAM: &str = "vigil_exec_guard";
/// The fallback on the `sched_prepare_exec` tracepoint.
const TRACEPOINT_PROGRAM: &str = "vigil_exec_guard_tp";

/// Why the guard could not start, or a map update failed.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The kernel has no active BPF LSM.
    #[error("the kernel has no BPF LSM: {0}")]
    NoBpfLsm(String),
    /// `guard.cgroup` is not a cgroup v2 directory.
    #[error("guard.cgroup: {path}: {why}")]
    Cgroup {
        /// The configured path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The kernel has the BPF LSM but refuses to load LSM programs (`EPERM`
    /// with an empty verifier log: seen on a Firecracker 6.18 kernel with
    /// lockdown=integrity, where fentry programs are refused the same way).
    #[error(
        "the kernel refused to load the LSM program (EPERM from BPF_PROG_LOAD, no verifier message): this kernel does not allow BPF LSM programs here"
    )]
    Refused,
    /// Neither program can be loaded on this kernel.
    #[error("{0}")]
    Unavailable(String),
    /// Loading or attaching the program.
    #[error("loading the exec guard: {0}")]
    Load(String),
    /// A map the program needs is missing or has the wrong type.
    #[error("exec guard map {0}: {1}")]
    Map(&'static str, String),
}

/// The guard's settings, resolved from the configuration against this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `guard.uncovered`, after the profile default.
    pub uncovered: GuardMode,
    /// `guard.network`.
    pub network: GuardMode,
    /// `guard.cgroup` as (cgroup id, level), when set.
    pub cgroup: Option<(u64, u32)>,
    /// `guard.cgroup` as written.
    pub cgroup_path: Option<PathBuf>,
    /// `guard.memfd_programs` that exist, as (kernel dev, inode).
    pub memfd_programs: Vec<(u32, u64)>,
}

impl Settings {
    /// Resolves `config.guard`: the cgroup's id and level, the allowed
    /// programs' device and inode (missing programs are skipped with a debug
    /// line; a program replaced by an upgrade needs a reload).
    ///
    /// # Errors
    /// [`GuardError::Cgroup`].
    pub fn resolve(config: &Config) -> Result<Settings, GuardError> {
        let g = &config.guard;
        let cgroup = g
            .cgroup
            .as_deref()
            .map(kernel::cgroup_id_level)
            .transpose()?;
        let mut memfd_programs = Vec::new();
        for path in &g.memfd_programs {
            match std::fs::metadata(path) {
                Ok(md) => memfd_programs.push((abi::kernel_dev(md.dev()), md.ino())),
                Err(e) => tracing::debug!(path = %path.display(), error = %e,
                    "guard.memfd_programs: skipped"),
            }
        }
        Ok(Settings {
            uncovered: g.uncovered_for(config.policy.profile),
            network: g.network,
            cgroup,
            cgroup_path: g.cgroup.clone(),
            memfd_programs,
        })
    }
}

/// The loaded, attached program and its maps.
pub struct Guard {
    ebpf: Ebpf,
    settings: Settings,
    hook: Option<abi::Hook>,
}

/// The program verified and loaded into the kernel, its maps made, nothing
/// attached yet: the costly half of a start. Parsing the kernel's BTF takes
/// about 25 MiB for a moment; the daemon does it before it loads its content,
/// so the two never add up in its peak resident size. The BTF is dropped once
/// the program is loaded: attaching needs only the program's descriptor.
pub struct Loaded {
    ebpf: Ebpf,
    ring: RingBuf<MapData>,
    hook: abi::Hook,
    /// Why the LSM hook is not used, when the tracepoint is.
    fallback: Option<GuardError>,
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> GuardError {
    move |e| GuardError::Map(name, e.to_string())
}

impl Guard {
    /// Parses the kernel's BTF, loads the object and its maps, and loads the
    /// LSM program where the kernel runs BPF LSM programs, else the
    /// `sched_prepare_exec` tracepoint program. Nothing runs until
    /// [`Loaded::start`] attaches it.
    ///
    /// # Errors
    /// [`GuardError::Unavailable`] when neither program can be loaded on this
    /// kernel; other load or verifier failures as [`GuardError::Load`].
    pub fn load() -> Result<Loaded, GuardError> {
        let btf = Btf::from_sys_fs().map_err(|e| {
            GuardError::Unavailable(format!(
                "no kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF): {e}"
            ))
        })?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .load(OBJECT)
            .map_err(|e| match &e {
                aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
                    if io_error.raw_os_error() == Some(nix::libc::EPERM) =>
                {
                    GuardError::Unavailable(
                        "the bpf() system call is refused (EPERM creating a map): no \
                         CAP_SYS_ADMIN/CAP_BPF, a seccomp filter (systemd's SystemCallFilter \
                         without bpf), or a container"
                            .to_owned(),
                    )
                }
                _ => GuardError::Load(format!("{e:#}")),
            })?;
        let ring = RingBuf::try_from(
            ebpf.take_map("guard_events")
                .ok_or_else(|| GuardError::Map("guard_events", "missing".to_owned()))?,
        )
        .map_err(map_err("guard_events"))?;
        {
            let mut classes: HashMap<_, u64, u8> = HashMap::try_from(
                ebpf.map_mut("fs_class")
                    .ok_or_else(|| GuardError::Map("fs_class", "missing".to_owned()))?,
            )
            .map_err(map_err("fs_class"))?;
            for (_, magic, class) in abi::MAGICS {
                classes
                    .insert(magic, class, 0)
                    .map_err(map_err("fs_class"))?;
            }
        }
        let (hook, fallback) = load_program(&mut ebpf, &btf)?;
        Ok(Loaded {
            ebpf,
            ring,
            hook,
            fallback,
        })
    }

    /// The program in use.
    pub fn hook(&self) -> Option<abi::Hook> {
        self.hook
    }

    /// Sets the modes, scope and allowed programs (start and reload). The
    /// allowed-program set is replaced whole.
    ///
    /// # Errors
    /// A map update the kernel refused.
    pub fn apply(&mut self, settings: Settings) -> Result<(), GuardError> {
        {
            let mut allowed: HashMap<_, [u8; 16], u8> = HashMap::try_from(
                self.ebpf
                    .map_mut("allowed_exe")
                    .ok_or_else(|| GuardError::Map("allowed_exe", "missing".to_owned()))?,
            )
            .map_err(map_err("allowed_exe"))?;
            let old: Vec<[u8; 16]> = allowed.keys().filter_map(Result::ok).collect();
            let new: Vec<[u8; 16]> = settings
                .memfd_programs
                .iter()
                .map(|&(dev, ino)| abi::exe_key(dev, ino))
                .collect();
            for key in &new {
                allowed.insert(key, 1, 0).map_err(map_err("allowed_exe"))?;
            }
            for key in old.iter().filter(|k| !new.contains(k)) {
                allowed.remove(key).map_err(map_err("allowed_exe"))?;
            }
        }
        let mut config: Array<_, [u8; abi::CONFIG_SIZE]> = Array::try_from(
            self.ebpf
                .map_mut("guard_config")
                .ok_or_else(|| GuardError::Map("guard_config", "missing".to_owned()))?,
        )
        .map_err(map_err("guard_config"))?;
        config
            .set(
                0,
                abi::config_value(settings.cgroup, settings.uncovered, settings.network),
                0,
            )
            .map_err(map_err("guard_config"))?;
        self.settings = settings;
        Ok(())
    }

    /// Records the superblock `dev` (kernel dev_t) as marked or known.
    ///
    /// # Errors
    /// A map update the kernel refused (the map holds 4096 superblocks).
    pub fn cover(&mut self, dev: u32, state: u8) -> Result<(), GuardError> {
        let mut covered: HashMap<_, u32, u8> = HashMap::try_from(
            self.ebpf
                .map_mut("covered")
                .ok_or_else(|| GuardError::Map("covered", "missing".to_owned()))?,
        )
        .map_err(map_err("covered"))?;
        covered.insert(dev, state, 0).map_err(map_err("covered"))
    }

    /// How many superblocks the `covered` map holds.
    pub fn covered_len(&self) -> usize {
        self.ebpf
            .map("covered")
            .and_then(|m| HashMap::<_, u32, u8>::try_from(m).ok())
            .map_or(0, |m| m.keys().count())
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The program's counters, by the names in [`abi::COUNTERS`].
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let Some(array) = self
            .ebpf
            .map("counters")
            .and_then(|m| Array::<_, u64>::try_from(m).ok())
        else {
            return Vec::new();
        };
        abi::COUNTERS
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let index = u32::try_from(i).ok()?;
                Some((*name, array.get(&index, 0).unwrap_or(0)))
            })
            .collect()
    }
}

impl Loaded {
    /// Records the superblocks in `covered` as (kernel dev,
    /// [`abi::COVER_MARKED`] or [`abi::COVER_KNOWN`]), applies `settings`,
    /// then attaches the program, so it never runs with an empty `covered`
    /// map. Returns the ring buffer the reports arrive on.
    ///
    /// # Errors
    /// A map update the kernel refused, or the attach failing
    /// ([`GuardError::Load`]).
    pub fn start(
        self,
        settings: Settings,
        covered: &[(u32, u8)],
    ) -> Result<(Guard, RingBuf<MapData>), GuardError> {
        if let Some(e) = &self.fallback {
            tracing::warn!(error = %e, "exec guard: no LSM hook; using the sched_prepare_exec tracepoint (a refused exec is killed with SIGKILL instead of failing with EPERM)");
        }
        let mut guard = Guard {
            ebpf: self.ebpf,
            settings: settings.clone(),
            hook: None,
        };
        for &(dev, state) in covered {
            guard.cover(dev, state)?;
        }
        guard.apply(settings)?;
        attach(&mut guard.ebpf, self.hook)?;
        guard.hook = Some(self.hook);
        Ok((guard, self.ring))
    }
}

/// Loads the LSM program where the kernel runs BPF LSM programs, else the
/// tracepoint program; returns which, and why not the LSM hook.
fn load_program(ebpf: &mut Ebpf, btf: &Btf) -> Result<(abi::Hook, Option<GuardError>), GuardError> {
    let lsm_error = match kernel::bpf_lsm_active() {
        Ok(()) => match load_lsm(ebpf, btf) {
            Ok(()) => return Ok((abi::Hook::Lsm, None)),
            Err(e @ GuardError::Refused) => e,
            Err(e) => return Err(e),
        },
        Err(e) => e,
    };
    program::<BtfTracePoint>(ebpf, TRACEPOINT_PROGRAM)?
        .load("sched_prepare_exec", btf)
        .map_err(|e| match e {
            ProgramError::LoadError { .. } => GuardError::Unavailable(format!(
                "{lsm_error}; the tracepoint fallback failed too: {e:#}"
            )),
            other => GuardError::Load(format!("tracepoint: {other:#}")),
        })?;
    Ok((abi::Hook::Tracepoint, Some(lsm_error)))
}

fn load_lsm(ebpf: &mut Ebpf, btf: &Btf) -> Result<(), GuardError> {
    program::<Lsm>(ebpf, LSM_PROGRAM)?
        .load("bprm_check_security", btf)
        .map_err(|e| match &e {
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } if io_error.raw_os_error() == Some(nix::libc::EPERM)
                && verifier_log.to_string().trim().is_empty() =>
            {
                GuardError::Refused
            }
            _ => GuardError::Load(format!("verifier: {e:#}")),
        })
}

/// Attaches the program [`load_program`] loaded.
fn attach(ebpf: &mut Ebpf, hook: abi::Hook) -> Result<(), GuardError> {
    match hook {
        abi::Hook::Lsm => {
            program::<Lsm>(ebpf, LSM_PROGRAM)?
                .attach()
                .map_err(|e| GuardError::Load(format!("attach: {e:#}")))?;
        }
        abi::Hook::Tracepoint => {
            program::<BtfTracePoint>(ebpf, TRACEPOINT_PROGRAM)?
                .attach()
                .map_err(|e| GuardError::Load(format!("attach tracepoint: {e:#}")))?;
        }
    }
    Ok(())
}

/// The object file's program `name`, as the program type `T` it must be.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, GuardError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| GuardError::Load(format!("program {name} missing")))?
        .try_into()
        .map_err(|e: ProgramError| GuardError::Load(format!("{e}")))
}
