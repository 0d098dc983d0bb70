//! The CRM's fixed picklists: where a lead came from, what kind of task it is, which events the
//! activity log records. Clients read them from `GET /api/v1/metadata`, never hard-code them.

/// A closed set of values with a stable wire name and a label for people.
pub trait Picklist: Sized + Copy + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn label(self) -> &'static str;

    /// Parses a wire name, with a message fit for a field error.
    fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == input)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                format!("must be one of {}", names.join(", "))
            })
    }
}

macro_rules! picklist {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => ($wire:literal, $label:literal)),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl Picklist for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
            fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }
    };
}

picklist!(
    /// Where a lead came from.
    LeadSource {
        Manual => ("manual", "Manual"),
        Import => ("import", "Import"),
        WebForm => ("web_form", "Web form"),
        Meta => ("meta", "Meta"),
        Google => ("google", "Google"),
        Linkedin => ("linkedin", "LinkedIn"),
        Api => ("api", "API"),
        Referral => ("referral", "Referral"),
        Other => ("other", "Other"),
    }
);

picklist!(
    TaskType {
        Call => ("call", "Call"),
        Email => ("email", "Email"),
        Meeting => ("meeting", "Meeting"),
        FollowUp => ("follow_up", "Follow-up"),
        Other => ("other", "Other"),
    }
);

picklist!(
    /// Every event the activity log records about a lead.
    ActivityKind {
        LeadCreated => ("lead_created", "Created"),
        InfoEdited => ("info_edited", "Details edited"),
        StageChanged => ("stage_changed", "Stage changed"),
        Assigned => ("assigned", "Assigned"),
        Unassigned => ("unassigned", "Unassigned"),
        PriorityChanged => ("priority_changed", "Priority changed"),
        Archived => ("archived", "Archived"),
        Restored => ("restored", "Restored"),
        MovedPipeline => ("moved_pipeline", "Moved to another pipeline"),
        HandoffAccepted => ("handoff_accepted", "Handoff accepted"),
        HandoffDenied => ("handoff_denied", "Handoff denied"),
        NoteAdded => ("note_added", "Note added"),
        NoteDeleted => ("note_deleted", "Note deleted"),
        TaskCreated => ("task_created", "Task created"),
        TaskCompleted => ("task_completed", "Task completed"),
        Imported => ("imported", "Imported"),
        Merged => ("merged", "Merged"),
        EmailQueued => ("email_queued", "Email sent"),
        EmailReplied => ("email_replied", "Replied by email"),
        SequenceStarted => ("sequence_started", "Sequence started"),
        SequenceStopped => ("sequence_stopped", "Sequence stopped"),
    }
);

impl ActivityKind {
    /// The kinds shown as the lead's stage history.
    pub const STAGE_HISTORY: [ActivityKind; 5] = [
        ActivityKind::StageChanged,
        ActivityKind::HandoffAccepted,
        ActivityKind::HandoffDenied,
        ActivityKind::MovedPipeline,
        ActivityKind::LeadCreated,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Picklist + PartialEq + std::fmt::Debug>() {
        for value in T::ALL {
            assert_eq!(T::parse(value.as_str()), Ok(*value));
            assert!(!value.label().is_empty());
        }
        assert!(T::parse("nope").is_err());
    }

    #[test]
    fn picklists_round_trip() {
        round_trips::<LeadSource>();
        round_trips::<TaskType>();
        round_trips::<ActivityKind>();
        assert_eq!(
            LeadSource::parse("x"),
            Err(
                "must be one of manual, import, web_form, meta, google, linkedin, api, referral, other"
                    .to_owned()
            )
        );
    }
}
