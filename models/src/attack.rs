//! A query-limited black-box attack on a classifier: a search over sequences of
//! [`mutate`] mutations with the model's score as its only feedback.
//!
//! Owns the search and its bookkeeping (queries spent, the winning sequence). It
//! owns no model and no file: the caller hands it the bytes, the donors and a
//! scoring function (one call is one query), and decides what to do with the
//! variant found (the pipeline check, feature rows for training). Nothing here
//! executes or writes anything.
//!
//! The search is greedy (a stochastic hill climb with first improvement): each
//! query scores one random step (a mutation, a donor and a seed) applied to the
//! best variant so far, and the step is kept only when it lowers the score. Why
//! greedy rather than evolutionary: with at most a few hundred queries, a
//! population spends most of them re-scoring siblings and crossovers of
//! sequences, while every mutation here only adds or renames what the loader
//! ignores, so improvements compose and one lineage keeps them all; the random
//! choice of mutation, donor and seed at every query is what gets it off a
//! plateau of the trees' piecewise-constant score. Everything random comes from
//! the seed, so a run is reproducible.
//!
//! ```
//! use vigil_models::attack::{Attack, search};
//! let mut elf = vec![0u8; 64];
//! elf[..4].copy_from_slice(b"\x7fELF");
//! elf[4] = 2;
//! elf[5] = 1;
//! // A stand-in model: bigger files look more benign.
//! let score = |b: &[u8]| -> Result<f32, vigil_models::Error> { Ok(64.0 / b.len() as f32) };
//! let attack = Attack { queries: 20, goal: 0.5, seed: 7, max_size: 1 << 20 };
//! let found = search(&elf, &[b"donor".as_slice()], &attack, score).unwrap();
//! assert!(found.best < found.start && found.queries <= 20);
//! ```

use std::fmt;

use crate::Error;
use crate::mutate::{self, Mutation, XorShift};

/// Consecutive candidate steps that do not apply (or change nothing, or grow
/// the file past the size limit) after which the search gives up: every
/// mutation has been tried many times on the current variant.
const MAX_FUTILE_STEPS: u32 = 200;

/// The limits and goal of one search.
#[derive(Debug, Clone, Copy)]
pub struct Attack {
    /// At most this many calls of the scoring function, the first (the
    /// unmodified file) included.
    pub queries: u32,
    /// The search stops as soon as a variant scores below this.
    pub goal: f32,
    /// Seeds every random choice.
    pub seed: u64,
    /// Variants larger than this are not scored (the model stage skips files
    /// above the bundle's `max_input_size`; padding past it is a different,
    /// trivial evasion this search is not about).
    pub max_size: usize,
}

/// One step of a sequence: a mutation applied with one donor and seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The mutation.
    pub mutation: Mutation,
    /// Index of the donor in the list the search was given.
    pub donor: usize,
    /// The mutation's seed.
    pub seed: u64,
}

impl fmt::Display for Step {
    /// `name:dDONOR:sSEED`, e.g. `add_symbols:d1:s8121`: no comma or space, so
    /// a sequence is a CSV field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:d{}:s{}",
            self.mutation.as_str(),
            self.donor,
            self.seed
        )
    }
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The score of the unmodified file.
    pub start: f32,
    /// The lowest score reached (`start` when no step helped).
    pub best: f32,
    /// Calls of the scoring function, at most [`Attack::queries`].
    pub queries: u32,
    /// The steps that lead from the file to `variant`, in order.
    pub steps: Vec<Step>,
    /// For each step, the query that found it (1-based, the unmodified
    /// file's being 1) and the score it reached: how many queries each
    /// threshold took to cross.
    pub trace: Vec<(u32, f32)>,
    /// The variant scoring `best`.
    pub variant: Vec<u8>,
}

impl Found {
    /// The number of queries after which the score was first below
    /// `threshold` (1 when the file itself was), `None` if it never was.
    pub fn queries_below(&self, threshold: f32) -> Option<u32> {
        if self.start < threshold {
            return Some(1);
        }
        self.trace
            .iter()
            .find(|(_, s)| *s < threshold)
            .map(|(q, _)| *q)
    }

    /// The steps as one field: `step+step+…` (empty for none).
    pub fn sequence(&self) -> String {
        self.steps
            .iter()
            .map(Step::to_string)
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// Searches for a variant of `elf` that `score` rates below `attack.goal`,
/// calling `score` at most `attack.queries` times (never when `queries` is 0:
/// then `start` and `best` are NaN). Guarantees: `found.best <= found.start`;
/// applying `found.steps` in order to `elf` with their donors gives
/// `found.variant`; the same inputs give the same result.
///
/// # Errors
/// The first error of `score`.
pub fn search(
    elf: &[u8],
    donors: &[&[u8]],
    attack: &Attack,
    mut score: impl FnMut(&[u8]) -> Result<f32, Error>,
) -> Result<Found, Error> {
    let mut found = Found {
        start: f32::NAN,
        best: f32::NAN,
        queries: 0,
        steps: Vec::new(),
        trace: Vec::new(),
        variant: elf.to_vec(),
    };
    if attack.queries == 0 {
        return Ok(found);
    }
    found.start = score(elf)?;
    found.best = found.start;
    found.queries = 1;
    let mut rng = XorShift::new(attack.seed);
    let mut futile = 0u32;
    while found.queries < attack.queries
        && found.best >= attack.goal
        && !donors.is_empty()
        && futile < MAX_FUTILE_STEPS
    {
        let step = Step {
            mutation: Mutation::ALL[(rng.next() % Mutation::ALL.len() as u64) as usize],
            donor: (rng.next() % donors.len() as u64) as usize,
            seed: rng.next() >> 40, // short enough to read in a report
        };
        let candidate = mutate::apply(step.mutation, &found.variant, donors[step.donor], step.seed)
            .filter(|v| v.len() <= attack.max_size && *v != found.variant);
        let Some(candidate) = candidate else {
            futile += 1;
            continue;
        };
        futile = 0;
        let s = score(&candidate)?;
        found.queries += 1;
        // Strictly lower: a sideways move would only grow the file.
        if s < found.best {
            found.best = s;
            found.variant = candidate;
            found.steps.push(step);
            found.trace.push((found.queries, s));
        }
    }
    Ok(found)
}

/// Applies `steps` to `elf` in order, as [`search`] did; `None` when a step
/// does not apply (other donors or another file).
pub fn replay(elf: &[u8], donors: &[&[u8]], steps: &[Step]) -> Option<Vec<u8>> {
    let mut bytes = elf.to_vec();
    for s in steps {
        bytes = mutate::apply(s.mutation, &bytes, donors.get(s.donor)?, s.seed)?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Bundle, ModelKind};
    use crate::features::{Features, extract_schema_into};
    use std::path::Path;

    /// The shipped classifier as a scoring function (one call, one query).
    fn shipped() -> Bundle {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundle");
        Bundle::load_dir(&dir).expect("models/bundle loads")
    }

    fn scorer(bundle: &Bundle) -> impl FnMut(&[u8]) -> Result<f32, Error> + '_ {
        let model = bundle
            .models()
            .iter()
            .find(|m| m.spec.kind == ModelKind::Classifier)
            .expect("a classifier");
        let mut row = Features::default();
        move |b: &[u8]| {
            extract_schema_into(b, bundle.schema(), &mut row);
            model.score(&row.values)
        }
    }

    /// Benign system programs stand in for samples: what matters is a real
    /// file, a real model and a score that moves.
    fn inputs() -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
        let target = std::fs::read("/usr/bin/true").ok()?;
        let donors = ["/usr/bin/ssh", "/usr/bin/gpg", "/bin/ls", "/bin/sh"]
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .collect::<Vec<_>>();
        (!donors.is_empty()).then_some((target, donors))
    }

    #[test]
    fn search_is_deterministic_and_respects_the_budget() {
        let Some((target, donors)) = inputs() else {
            eprintln!("skipped: no /usr/bin/true or donors");
            return;
        };
        let donors: Vec<&[u8]> = donors.iter().map(Vec::as_slice).collect();
        let bundle = shipped();
        // An unreachable goal: the search spends its whole budget.
        let attack = Attack {
            queries: 25,
            goal: -1.0,
            seed: 11,
            max_size: 4 << 20,
        };
        let calls = std::cell::Cell::new(0u32);
        let mut inner = scorer(&bundle);
        let counting = |b: &[u8]| {
            calls.set(calls.get() + 1);
            inner(b)
        };
        let a = search(&target, &donors, &attack, counting).unwrap();
        assert_eq!(a.queries, 25);
        assert_eq!(calls.get(), 25, "one query, one call");
        let b = search(&target, &donors, &attack, scorer(&bundle)).unwrap();
        assert_eq!(a, b, "same seed, same search");
        let c = search(
            &target,
            &donors,
            &Attack { seed: 12, ..attack },
            scorer(&bundle),
        )
        .unwrap();
        assert!(a.best <= a.start && c.best <= c.start);
        assert_eq!(a.trace.len(), a.steps.len());
        assert!(
            a.trace
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 > w[1].1)
        );
        assert_eq!(a.trace.last().map_or(a.start, |t| t.1), a.best);
        assert_eq!(a.queries_below(a.best), None);
        assert_eq!(a.queries_below(f32::INFINITY), Some(1));
        // The sequence reproduces the variant, and the variant its score.
        assert_eq!(
            replay(&target, &donors, &a.steps).as_ref(),
            Some(&a.variant)
        );
        assert_eq!(scorer(&bundle)(&a.variant).unwrap(), a.best);
    }

    #[test]
    fn search_stops_at_the_goal_and_each_kept_step_lowers_the_score() {
        let Some((target, donors)) = inputs() else {
            eprintln!("skipped: no /usr/bin/true or donors");
            return;
        };
        let donors: Vec<&[u8]> = donors.iter().map(Vec::as_slice).collect();
        let bundle = shipped();
        let mut model = scorer(&bundle);
        let start = model(&target).unwrap();
        // A goal the search can reach: any lower score than the start.
        let attack = Attack {
            queries: 200,
            goal: start,
            seed: 3,
            max_size: 4 << 20,
        };
        let found = search(&target, &donors, &attack, scorer(&bundle)).unwrap();
        assert_eq!(found.start, start);
        if found.best < start {
            assert!(!found.steps.is_empty());
            // It stopped at the first variant below the goal.
            let mut last = start;
            for n in 1..=found.steps.len() {
                let v = replay(&target, &donors, &found.steps[..n]).unwrap();
                let s = model(&v).unwrap();
                assert!(s < last, "step {n} lowered the score");
                last = s;
            }
            assert!(found.queries <= 200);
        } else {
            assert_eq!(found.queries, 200, "no improvement: the whole budget");
            assert!(found.steps.is_empty());
        }
        // No query at all with a zero budget; none past the budget with one.
        let none = search(
            &target,
            &donors,
            &Attack {
                queries: 0,
                ..attack
            },
            |_| panic!("no query allowed"),
        )
        .unwrap();
        assert_eq!(none.queries, 0);
        let one = search(
            &target,
            &donors,
            &Attack {
                queries: 1,
                ..attack
            },
            scorer(&bundle),
        )
        .unwrap();
        assert_eq!((one.queries, one.steps.len()), (1, 0));
    }
}
