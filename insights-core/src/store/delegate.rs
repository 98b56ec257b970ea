//! Forwarding impls of the area traits, for wrappers and test doubles: a
//! double writes by hand the area it fakes and forwards the others.
//!
//! The signatures live next to each trait (its `__delegate_*` macro);
//! [`delegate_store_areas!`](crate::delegate_store_areas) picks the areas.

/// Implements area traits of [`MetadataStore`](crate::store::MetadataStore)
/// for a wrapper type by forwarding every method to one of its fields
/// (anything whose methods resolve to a metadata store's, e.g. an
/// `Arc<dyn MetadataStore>`).
///
/// ```text
/// // Every area forwarded:
/// delegate_store_areas!(Wrapper => inner);
/// // All but these, which the wrapper implements by hand:
/// delegate_store_areas!(Wrapper => inner; except RecordingStore, DataKeyStore);
/// // `self.check("method_name")?` before every async method
/// // (`fn check(&self, method: &'static str) -> StoreResult<()>`):
/// delegate_store_areas!(Wrapper => inner, before check);
/// ```
///
/// The wrapper is then a `MetadataStore` (blanket impl). Area names are the
/// trait names re-exported by [`crate::store`].
#[macro_export]
macro_rules! delegate_store_areas {
    (@expand ($d:tt) $ty:ty => $inner:ident, $hook:tt, [$($except:ident)*]) => {
        // A local macro that expands to nothing for an excepted area and
        // to the forwarding impl for any other.
        macro_rules! __delegate_store_area_unless_excepted {
            $( ($except) => {}; )*
            ($d area:ident) => {
                $crate::__delegate_store_area!($d area, $ty => $inner, $hook);
            };
        }
        __delegate_store_area_unless_excepted!(TenantStore);
        __delegate_store_area_unless_excepted!(DirectoryStore);
        __delegate_store_area_unless_excepted!(RecordingStore);
        __delegate_store_area_unless_excepted!(SearchStore);
        __delegate_store_area_unless_excepted!(TranscriptStore);
        __delegate_store_area_unless_excepted!(JobStore);
        __delegate_store_area_unless_excepted!(AuditStore);
        __delegate_store_area_unless_excepted!(GovernanceStore);
        __delegate_store_area_unless_excepted!(AccountStore);
        __delegate_store_area_unless_excepted!(ApprovalStore);
        __delegate_store_area_unless_excepted!(DataKeyStore);
        __delegate_store_area_unless_excepted!(ProcessingStore);
        __delegate_store_area_unless_excepted!(SubjectStore);
        __delegate_store_area_unless_excepted!(SigningKeyStore);
        __delegate_store_area_unless_excepted!(LeaseStore);
        __delegate_store_area_unless_excepted!(MeetingClaimStore);
        __delegate_store_area_unless_excepted!(SegmentUploadStore);
        __delegate_store_area_unless_excepted!(RecordingGapStore);
        __delegate_store_area_unless_excepted!(TransientStore);
        __delegate_store_area_unless_excepted!(AlertStore);
    };
    ($ty:ty => $inner:ident $(, before $hook:ident)? $(; except $($area:ident),+ $(,)?)?) => {
        $crate::delegate_store_areas!(
            @expand ($) $ty => $inner, [$($hook)?], [$($($area)+)?]
        );
    };
}

/// Implementation detail of [`delegate_store_areas!`]: one area's impl.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_store_area {
    (TenantStore, $($rest:tt)*) => { $crate::__delegate_tenant_store!($($rest)*); };
    (DirectoryStore, $($rest:tt)*) => { $crate::__delegate_directory_store!($($rest)*); };
    (RecordingStore, $($rest:tt)*) => { $crate::__delegate_recording_store!($($rest)*); };
    (SearchStore, $($rest:tt)*) => { $crate::__delegate_search_store!($($rest)*); };
    (TranscriptStore, $($rest:tt)*) => { $crate::__delegate_transcript_store!($($rest)*); };
    (JobStore, $($rest:tt)*) => { $crate::__delegate_job_store!($($rest)*); };
    (AuditStore, $($rest:tt)*) => { $crate::__delegate_audit_store!($($rest)*); };
    (GovernanceStore, $($rest:tt)*) => { $crate::__delegate_governance_store!($($rest)*); };
    (AccountStore, $($rest:tt)*) => { $crate::__delegate_account_store!($($rest)*); };
    (ApprovalStore, $($rest:tt)*) => { $crate::__delegate_approval_store!($($rest)*); };
    (DataKeyStore, $($rest:tt)*) => { $crate::__delegate_data_key_store!($($rest)*); };
    (ProcessingStore, $($rest:tt)*) => { $crate::__delegate_processing_store!($($rest)*); };
    (SubjectStore, $($rest:tt)*) => { $crate::__delegate_subject_store!($($rest)*); };
    (SigningKeyStore, $($rest:tt)*) => { $crate::__delegate_signing_key_store!($($rest)*); };
    (LeaseStore, $($rest:tt)*) => { $crate::__delegate_lease_store!($($rest)*); };
    (MeetingClaimStore, $($rest:tt)*) => { $crate::__delegate_meeting_claim_store!($($rest)*); };
    (SegmentUploadStore, $($rest:tt)*) => { $crate::__delegate_segment_upload_store!($($rest)*); };
    (RecordingGapStore, $($rest:tt)*) => { $crate::__delegate_recording_gap_store!($($rest)*); };
    (TransientStore, $($rest:tt)*) => { $crate::__delegate_transient_store!($($rest)*); };
    (AlertStore, $($rest:tt)*) => { $crate::__delegate_alert_store!($($rest)*); };
}

/// Implementation detail of [`delegate_store_areas!`]: the forwarding impl
/// of one trait from its method signatures. Synchronous methods (in
/// `sync { }`) are forwarded as they are; async ones after the hook.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_impl {
    (
        $trait:ident for $ty:ty => $inner:ident, $hook:tt;
        $(sync { $(fn $sname:ident(&self) -> $sret:ty;)* })?
        $(fn $name:ident(&self $(, $arg:ident: $argty:ty)*) -> $ret:ty;)*
    ) => {
        const _: () = {
            #[allow(unused_imports)]
            use $crate::crypto::{WrappedDataKey, WrappedKek};
            #[allow(unused_imports)]
            use $crate::domain::*;
            use $crate::store::*;

            #[$crate::store::__async_trait]
            impl $trait for $ty {
                $($(
                    fn $sname(&self) -> $sret {
                        self.$inner.$sname()
                    }
                )*)?
                $(
                    async fn $name(&self $(, $arg: $argty)*) -> $ret {
                        $crate::__delegate_hook!(self, $hook, $name);
                        self.$inner.$name($($arg),*).await
                    }
                )*
            }
        };
    };
}

/// Implementation detail of [`delegate_store_areas!`]: the `before` hook.
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_hook {
    ($self:tt, [], $name:ident) => {};
    ($self:tt, [$hook:ident], $name:ident) => {
        $self.$hook(::core::stringify!($name))?;
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use crate::domain::*;
    use crate::store::{MetadataStore, SearchStore, StoreError, StoreResult};

    /// Forwards every area.
    struct Forward {
        inner: Arc<dyn MetadataStore>,
    }
    crate::delegate_store_areas!(Forward => inner);

    /// Forwards every area but search (faked by hand), counting calls.
    struct Counting {
        inner: Arc<dyn MetadataStore>,
        calls: AtomicUsize,
    }
    impl Counting {
        fn count(&self, _method: &'static str) -> StoreResult<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    crate::delegate_store_areas!(Counting => inner, before count; except SearchStore);

    #[async_trait]
    impl SearchStore for Counting {
        async fn search_recordings(
            &self,
            _tenant: TenantId,
            _query: &RecordingQuery,
        ) -> StoreResult<SearchPage> {
            Err(StoreError::Refused("search is down".into()))
        }
    }

    fn is_metadata_store<S: MetadataStore + ?Sized>() {}

    #[test]
    fn forwarding_wrappers_are_metadata_stores() {
        is_metadata_store::<Forward>();
        is_metadata_store::<Counting>();
        is_metadata_store::<dyn MetadataStore>();
        // Both wrappers nest: a wrapper of a wrapper is a store too.
        let _ = |inner: Arc<dyn MetadataStore>| -> Arc<dyn MetadataStore> {
            let forward: Arc<dyn MetadataStore> = Arc::new(Forward { inner });
            Arc::new(Counting {
                inner: forward,
                calls: AtomicUsize::new(0),
            })
        };
    }
}
