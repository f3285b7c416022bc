//! Who this process is in a parallel job: its MPI rank and its Slurm job
//! and step, as the launcher put them in the environment. Read once, with
//! the settings; every audit record carries them, the refusal and warning
//! lines name them, and the configuration file can match on them.
//!
//! The rank comes from the first of [`RANK_VARS`] that holds a number: Open
//! MPI (`OMPI_COMM_WORLD_RANK`), PMIx (`PMIX_RANK`), MPICH and Intel MPI
//! (`PMI_RANK`), MVAPICH2 (`MV2_COMM_WORLD_RANK`), then Slurm's task id
//! (`SLURM_PROCID`, which `srun` sets for every task, MPI or not).

/// Where the rank is read from, first set and valid wins.
pub const RANK_VARS: [&str; 5] =
    ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID"];
/// The Slurm job and step.
pub const JOB_VAR: &str = "SLURM_JOB_ID";
pub const STEP_VAR: &str = "SLURM_STEP_ID";

/// A job or step id longer than this is not one.
const MAX_ID: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub rank: Option<u32>,
    pub job: Option<String>,
    pub step: Option<String>,
}

impl Identity {
    /// Reads the variables through `get`. A value that is not a rank (a
    /// decimal number) or an id (1 to 64 of `A-Za-z0-9._-`) is ignored:
    /// these are labels, and a malformed one must not leak into a message
    /// or a record.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Identity {
        let rank = RANK_VARS.iter().find_map(|v| get(v).and_then(|s| parse_rank(&s)));
        let id = |v| get(v).filter(|s| is_id(s));
        Identity { rank, job: id(JOB_VAR), step: id(STEP_VAR) }
    }

    pub fn is_empty(&self) -> bool {
        self.rank.is_none() && self.job.is_none()
    }

    /// What the refusal and warning lines end with: ` (rank 1, Slurm job 42
    /// step 0)`, or nothing at all outside a job, so those lines stay as
    /// they always were.
    pub fn suffix(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(r) = self.rank {
            parts.push(format!("rank {r}"));
        }
        if let Some(j) = &self.job {
            match &self.step {
                Some(s) => parts.push(format!("Slurm job {j} step {s}")),
                None => parts.push(format!("Slurm job {j}")),
            }
        }
        if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
    }
}

fn parse_rank(s: &str) -> Option<u32> {
    (!s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

fn is_id(s: &str) -> bool {
    (1..=MAX_ID).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::env;

    #[test]
    fn nothing_set_says_nothing() {
        let id = Identity::from_env(env(&[]));
        assert!(id.is_empty());
        assert_eq!(id.suffix(), "");
    }

    #[test]
    fn first_valid_rank_wins() {
        let id = Identity::from_env(env(&[("PMI_RANK", "3"), ("SLURM_PROCID", "7"), ("OMPI_COMM_WORLD_RANK", "x")]));
        assert_eq!(id.rank, Some(3), "a bad Open MPI value is skipped, PMI's is taken before Slurm's");
        assert_eq!(id.suffix(), " (rank 3)");
        assert_eq!(Identity::from_env(env(&[("SLURM_PROCID", "0")])).rank, Some(0));
        for bad in ["", "-1", "+1", "1.0", "99999999999", " 1"] {
            assert_eq!(Identity::from_env(env(&[("PMIX_RANK", bad)])).rank, None, "{bad:?}");
        }
    }

    #[test]
    fn slurm_job_and_step() {
        let id =
            Identity::from_env(env(&[("OMPI_COMM_WORLD_RANK", "1"), ("SLURM_JOB_ID", "42"), ("SLURM_STEP_ID", "0")]));
        assert_eq!(id.suffix(), " (rank 1, Slurm job 42 step 0)");
        let id = Identity::from_env(env(&[("SLURM_JOB_ID", "42")]));
        assert_eq!((id.rank, id.suffix().as_str()), (None, " (Slurm job 42)"));
        let forged = Identity::from_env(env(&[("SLURM_JOB_ID", "42) daxguard: ok"), ("SLURM_STEP_ID", "a\nb")]));
        assert!(forged.is_empty() && forged.step.is_none(), "{forged:?}");
        assert!(Identity::from_env(env(&[("SLURM_JOB_ID", &"9".repeat(65))])).job.is_none());
    }
}
