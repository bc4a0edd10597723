//! Result fields that hold one of a few words (a step's kind, an assertion's operator, what a
//! figure measures, the target's kind and clock, a scope item's status and coverage outcome, a
//! covering spec's outcome) as enums, each written as the word results.json (and a history
//! record) has always had. A word this version does not write (a results.json of another
//! version, or one edited by hand) loads as `Other`, kept as it was, and is written back
//! unchanged.

use super::Status;

/// An enum of words: `Variant = "word"`, plus `Other(String)`; serialised as the word.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A word this version does not write, kept as it was read.
            Other(String),
        }

        impl $name {
            /// Every word this version writes.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// The word, as results.json has it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $word,)+
                    $name::Other(s) => s,
                }
            }

            /// The value of a word (`Other` for one this version does not write).
            pub fn from_word(s: &str) -> $name {
                match s {
                    $($word => $name::$variant,)+
                    _ => $name::Other(s.to_string()),
                }
            }

        }

        impl super::Redact for $name {
            /// Only a word this version does not write is text of outside origin (read back
            /// from a file); our own words carry no secret.
            fn redact_with(&mut self, r: &super::Redactor) {
                if let $name::Other(s) = self {
                    s.redact_with(r);
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                struct Word;
                impl serde::de::Visitor<'_> for Word {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        Ok($name::from_word(s))
                    }
                }
                d.deserialize_str(Word)
            }
        }
    };
}

words! {
    /// Where a run's target is (`TargetInfo::kind`, a coverage item's target, a history record).
    pub enum TargetKind {
        /// The simulator in this process, on a virtual clock.
        Embedded = "embedded",
        /// A `focusqa sim` started elsewhere.
        Simulator = "simulator",
        /// A real Focus Server.
        Remote = "remote",
    }
}

impl Default for TargetKind {
    /// Not recorded (a coverage item of a record written before kinds were kept): `Other("")`.
    fn default() -> TargetKind {
        TargetKind::Other(String::new())
    }
}

words! {
    /// The clock a run's durations were measured on (`TargetInfo::clock`).
    pub enum Clock {
        /// The embedded simulator's: every duration and statistic is simulated time, on a clock
        /// that advances only while every task waits.
        Virtual = "virtual",
        /// Real time (a simulator elsewhere, or a real server).
        Wall = "wall",
    }
}

words! {
    /// Where a coverage item stands in the scope (`CoverageItem::status`). Items out of scope
    /// are listed apart (`Coverage::excluded`), never as items.
    pub enum ItemStatus {
        /// Must be covered: counted, and a gap when nothing covers it.
        In = "in",
        /// Agreed for later: shown with its outcome, not counted.
        Backlog = "backlog",
    }
}

impl ItemStatus {
    /// Whether the item counts towards the in-scope figures (a word of another version does not).
    pub fn in_scope(&self) -> bool {
        match self {
            ItemStatus::In => true,
            ItemStatus::Backlog | ItemStatus::Other(_) => false,
        }
    }
}

impl Default for ItemStatus {
    /// No status (an item made by hand): `Other("")`.
    fn default() -> ItemStatus {
        ItemStatus::Other(String::new())
    }
}

words! {
    /// A scope item's coverage outcome (`CoverageItem::outcome`, a history record's
    /// `coverage`), from the outcomes of the specs that cover it.
    pub enum CoverageOutcome {
        /// No covering spec failed, and one passed.
        Verified = "verified",
        /// A covering spec failed or erred.
        Failing = "failing",
        /// No covering spec passed or failed, and one was skipped.
        Skipped = "skipped",
        /// Covered, but no covering spec ran (not selected, or not reached).
        NotRun = "not_run",
        /// No spec covers it.
        Gap = "gap",
    }
}

impl CoverageOutcome {
    /// Whether something ran to establish the outcome (so it was established on some target).
    pub fn ran(&self) -> bool {
        match self {
            CoverageOutcome::Verified | CoverageOutcome::Failing | CoverageOutcome::Skipped => true,
            CoverageOutcome::NotRun | CoverageOutcome::Gap | CoverageOutcome::Other(_) => false,
        }
    }

    /// The outcome for people: `Verified`, `Gap — no spec`, `Not run in this run`.
    pub fn label(&self) -> &'static str {
        match self {
            CoverageOutcome::Verified => "Verified",
            CoverageOutcome::Failing => "Failing",
            CoverageOutcome::Skipped => "Skipped",
            CoverageOutcome::NotRun => "Not run in this run",
            CoverageOutcome::Gap => "Gap — no spec",
            CoverageOutcome::Other(_) => "Unknown",
        }
    }
}

impl Default for CoverageOutcome {
    /// No outcome (an item made by hand): `Other("")`.
    fn default() -> CoverageOutcome {
        CoverageOutcome::Other(String::new())
    }
}

words! {
    /// A covering spec's outcome for an item (`CoveringSpec::outcome`): the spec's status, or
    /// its covering steps' when the item is proven by some steps of it.
    pub enum SpecOutcome {
        Passed = "passed",
        Failed = "failed",
        Error = "error",
        Skipped = "skipped",
        /// Not run in this run (not selected).
        NotRun = "not_run",
        /// The spec ran but never reached its covering steps (an earlier step failed).
        NotReached = "not_reached",
    }
}

impl From<Status> for SpecOutcome {
    fn from(s: Status) -> SpecOutcome {
        match s {
            Status::Passed => SpecOutcome::Passed,
            Status::Failed => SpecOutcome::Failed,
            Status::Error => SpecOutcome::Error,
            Status::Skipped => SpecOutcome::Skipped,
        }
    }
}

impl SpecOutcome {
    /// The outcome for people: `Passed`, `Not run in this run`.
    pub fn label(&self) -> &'static str {
        match self {
            SpecOutcome::Passed => "Passed",
            SpecOutcome::Failed => "Failed",
            SpecOutcome::Error => "Error",
            SpecOutcome::Skipped => "Skipped",
            SpecOutcome::NotRun => "Not run in this run",
            SpecOutcome::NotReached => "Not reached (an earlier step failed)",
            SpecOutcome::Other(_) => "Unknown",
        }
    }
}

words! {
    /// A step's kind (`StepResult::kind`): the spec's step kinds, and two the engine adds.
    pub enum StepKindName {
        Http = "http",
        Sleep = "sleep",
        Assert = "assert",
        Sim = "sim",
        Kube = "kube",
        Fanout = "fanout",
        Foreach = "foreach",
        Repeat = "repeat",
        Include = "include",
        /// One run of a block (a `foreach` item, a `repeat` run), holding its steps.
        Run = "run",
        /// A step whose run panicked (the panic is its error).
        Panic = "panic",
    }
}

impl Default for StepKindName {
    /// No kind (a result made by hand): `Other("")`.
    fn default() -> StepKindName {
        StepKindName::Other(String::new())
    }
}

words! {
    /// What a fan-out step's figures measure (`LatencyStats::measure`).
    pub enum Measure {
        /// One request's round trip (real time on every target: no simulator models network
        /// time).
        RequestLatency = "request latency",
        /// A polled or waiting step: first attempt until its condition held (or the poll gave
        /// up), in the spec's time, i.e. simulated time on a scaled simulator.
        TimeUntilHeld = "time until the condition held",
        /// Any other step's whole duration.
        Duration = "step duration",
    }
}

words! {
    /// An assertion's operator (`AssertionResult::op`), as the reports show it: `$.status
    /// equals "configured"`, `threshold `failed == 0` holds`.
    pub enum AssertOp {
        // JSON, text and header checks
        Equals = "equals",
        NotEquals = "not equals",
        Matches = "matches",
        DoesNotMatch = "does not match",
        Contains = "contains",
        DoesNotContain = "does not contain",
        HasType = "has type",
        IsOneOf = "is one of",
        Exists = "exists",
        Lt = "<",
        Le = "<=",
        Gt = ">",
        Ge = ">=",
        Eq = "==",
        /// `json_partial`: the document holds the expected one.
        MatchesPartial = "matches (partial)",
        /// A header with several values: one of them contains / matches.
        ContainsInSomeValue = "contains (in some value)",
        MatchesSomeValue = "matches (some value)",
        /// `count` of a header's values.
        Count = "count",
        /// The body's length in bytes, and its digests.
        Length = "length",
        Sha256 = "sha256",
        Md5 = "md5",
        /// A JSON schema.
        ConformsTo = "conforms to",
        /// `max_elapsed` of a poll.
        AtMost = "at most",
        /// An `assert` step's expression (`is` true).
        Is = "is",
        /// An expected request error (`error: timeout`).
        FailsWith = "fails with",
        // kube steps
        /// `kube wait` without a `count`: at least one object matches (with one: `matches`).
        MatchesAtLeast = "matches at least",
        Deleted = "deleted",
        IsAbsent = "is absent",
        // blocks and fan-outs
        EveryStepPasses = "every step passes",
        FalseWithinMaxRuns = "false within max runs",
        /// A fan-out threshold.
        Holds = "holds",
        ReleasedEveryIteration = "released every iteration",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(known: &[T])
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        for w in known {
            let json = serde_json::to_string(w).unwrap();
            assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), w, "{json}");
        }
    }

    #[test]
    fn words_are_written_as_they_always_were() {
        assert_eq!(
            serde_json::to_string(&TargetKind::Embedded).unwrap(),
            r#""embedded""#
        );
        assert_eq!(
            serde_json::to_string(&Measure::TimeUntilHeld).unwrap(),
            r#""time until the condition held""#
        );
        assert_eq!(
            serde_json::to_string(&AssertOp::MatchesPartial).unwrap(),
            r#""matches (partial)""#
        );
        assert_eq!(serde_json::to_string(&AssertOp::Le).unwrap(), r#""<=""#);
        assert_eq!(
            serde_json::to_string(&StepKindName::Fanout).unwrap(),
            r#""fanout""#
        );
        round_trips(TargetKind::KNOWN);
        round_trips(Clock::KNOWN);
        round_trips(ItemStatus::KNOWN);
        round_trips(CoverageOutcome::KNOWN);
        round_trips(SpecOutcome::KNOWN);
        round_trips(StepKindName::KNOWN);
        round_trips(Measure::KNOWN);
        round_trips(AssertOp::KNOWN);
        // Each word names one variant.
        for w in AssertOp::KNOWN {
            assert_eq!(&AssertOp::from_word(w.as_str()), w);
        }
        assert_eq!(format!("[{:<8}]", TargetKind::Remote), "[remote  ]");
    }

    /// Each known word as serde_json writes it, in order.
    fn written<T: serde::Serialize>(known: &[T]) -> Vec<String> {
        known
            .iter()
            .map(|w| serde_json::to_string(w).unwrap())
            .collect()
    }

    #[test]
    fn coverage_and_clock_words_are_the_old_strings() {
        // What results.json and history records have always had (the fields were strings).
        assert_eq!(written(Clock::KNOWN), [r#""virtual""#, r#""wall""#]);
        assert_eq!(written(ItemStatus::KNOWN), [r#""in""#, r#""backlog""#]);
        assert_eq!(
            written(CoverageOutcome::KNOWN),
            [
                r#""verified""#,
                r#""failing""#,
                r#""skipped""#,
                r#""not_run""#,
                r#""gap""#
            ]
        );
        assert_eq!(CoverageOutcome::Gap.label(), "Gap — no spec");
        assert!(CoverageOutcome::Skipped.ran() && !CoverageOutcome::NotRun.ran());
        assert!(ItemStatus::In.in_scope() && !ItemStatus::Backlog.in_scope());
        // A word of another version loads, is written back as it was, and counts as nothing.
        let odd: CoverageOutcome = serde_json::from_str(r#""partial""#).unwrap();
        assert_eq!(odd, CoverageOutcome::Other("partial".into()));
        assert_eq!(serde_json::to_string(&odd).unwrap(), r#""partial""#);
        assert!(!odd.ran());
        assert_eq!(odd.label(), "Unknown");
    }

    #[test]
    fn covering_spec_outcomes_are_the_old_strings() {
        // What results.json has always had (the field was a string): the words of a spec's
        // status, then the two of a spec that did not run the covering steps.
        assert_eq!(
            written(SpecOutcome::KNOWN),
            [
                r#""passed""#,
                r#""failed""#,
                r#""error""#,
                r#""skipped""#,
                r#""not_run""#,
                r#""not_reached""#
            ]
        );
        for s in [
            Status::Passed,
            Status::Failed,
            Status::Error,
            Status::Skipped,
        ] {
            assert_eq!(SpecOutcome::from(s).as_str(), s.as_str());
        }
        assert_eq!(SpecOutcome::NotRun.label(), "Not run in this run");
        // A word of another version loads and is written back as it was.
        let odd: SpecOutcome = serde_json::from_str(r#""partial""#).unwrap();
        assert_eq!(odd, SpecOutcome::Other("partial".into()));
        assert_eq!(serde_json::to_string(&odd).unwrap(), r#""partial""#);
        assert_eq!(odd.label(), "Unknown");
    }

    #[test]
    fn words_of_other_versions_load_and_are_written_back_unchanged() {
        // Operators earlier versions wrote (tests/fixtures/results-full.json has them).
        for old in ["partial match", "below", ""] {
            let json = serde_json::to_string(old).unwrap();
            let op: AssertOp = serde_json::from_str(&json).unwrap();
            assert_eq!(op, AssertOp::Other(old.into()));
            assert_eq!(serde_json::to_string(&op).unwrap(), json);
        }
        let kind: TargetKind = serde_json::from_value(serde_json::json!("staging")).unwrap();
        assert_eq!(kind.as_str(), "staging");
        assert_eq!(TargetKind::default().as_str(), "");
        assert!(
            serde_json::from_str::<Measure>("3").is_err(),
            "a word, not a number"
        );
    }
}

#[cfg(test)]
mod fixture_tests {
    use serde_json::Value;

    /// Every word field of a results.json: its place and its text.
    fn words(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let here = format!("{path}/{k}");
                    match (k.as_str(), x) {
                        (
                            "op" | "kind" | "measure" | "target_kind" | "clock" | "status"
                            | "outcome",
                            Value::String(s),
                        ) => out.push((here, s.clone())),
                        _ => words(x, &here, out),
                    }
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    words(x, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn results_files_keep_their_words_when_read_and_written_back() {
        for f in ["results-full.json", "results-passing.json"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(f);
            let before: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let report: crate::results::RunReport = serde_json::from_value(before.clone()).unwrap();
            let after = serde_json::to_value(&report).unwrap();
            let (mut b, mut a) = (Vec::new(), Vec::new());
            words(&before, "", &mut b);
            words(&after, "", &mut a);
            assert!(b.len() > 10, "{f}: {b:?}");
            assert_eq!(a, b, "{f}");
        }
    }
}
