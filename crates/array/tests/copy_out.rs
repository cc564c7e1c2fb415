//! ND4J's copy-out behaviours (shared/reference/dl4j-workspaces.md §6, items 23–31): detach,
//! views, leverage, leverage_to, migrate, dtypes, and leaked / outdated arrays refused by every
//! copy operation.

use dl4rs_array::*;
use dl4rs_memory::*;

fn ws(id: &str) -> Workspace {
    let cfg = WorkspaceConfig::builder()
        .initial_size(1 << 16)
        .policy_learning(LearningPolicy::None)
        .build()
        .unwrap();
    get_workspace_for_current_thread(&cfg, id).unwrap()
}

fn offset(w: &Workspace) -> usize {
    w.stats().unwrap().offset
}

/// Item 23 (testDetach1): detach gives an equal heap copy that survives the cycle, and does not
/// allocate in the workspace.
#[test]
fn i23_detach() {
    let w = ws("C23");
    let detached = {
        let _s = w.notify_scope_entered().unwrap();
        let a = NdArray::<f32>::from_slice(&[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let before = offset(&w);
        let d = a.detach().unwrap();
        assert_eq!(offset(&w), before);
        assert!(!d.is_attached());
        d
    };
    assert_eq!(detached.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
}

/// Item 24 (testViewDetach_1): detaching a view gives a plain contiguous array of the view.
#[test]
fn i24_view_detach() {
    let w = ws("C24");
    let _s = w.notify_scope_entered().unwrap();
    let a =
        NdArray::<f64>::from_slice(&[3, 4], &(0..12).map(f64::from).collect::<Vec<_>>()).unwrap();
    let col = a.view().slice_axis(1, 1, 3, 1).unwrap().t();
    let d = col.detach().unwrap();
    assert!(d.is_contiguous() && !d.is_attached());
    assert_eq!(d.shape(), &[2, 3]);
    assert_eq!(d.to_vec().unwrap(), vec![1.0, 5.0, 9.0, 2.0, 6.0, 10.0]);
}

/// Item 25 (testLeverageTo2 / testLeverage3): leverage_to copies into the outer workspace; the
/// copy survives the inner cycle and is independent of the source, also for views.
#[test]
fn i25_leverage_to_survives_inner_cycle() {
    let outer = ws("C25_EXT");
    let inner = ws("C25_INT");
    let _o = outer.notify_scope_entered().unwrap();
    let (kept, kept_row) = {
        let _i = inner.notify_scope_entered().unwrap();
        let a = NdArray::<f32>::from_slice(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let row = a.view().index_axis(0, 1).unwrap().copy_to(&inner).unwrap();
        let kept = a.dup().unwrap().leverage_to("C25_EXT").unwrap();
        let kept_row = row.leverage_to("C25_EXT").unwrap();
        let mut a = a;
        a.fill(0.0).unwrap();
        (kept, kept_row)
    };
    assert_eq!(kept.workspace_id(), Some("C25_EXT"));
    assert_eq!(kept.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(kept_row.to_vec().unwrap(), vec![4.0, 5.0, 6.0]);
}

/// Item 26 (testLeverageTo1): leverage_to advances the target's offset by the aligned size.
#[test]
fn i26_leverage_to_advances_target() {
    let outer = ws("C26_EXT");
    let inner = ws("C26_INT");
    let _o = outer.notify_scope_entered().unwrap();
    let _i = inner.notify_scope_entered().unwrap();
    let a = NdArray::<f64>::ones(&[5]).unwrap();
    let before = offset(&outer);
    let _b = a.leverage_to("C26_EXT").unwrap();
    assert_eq!(offset(&outer), before + 64);
}

/// Item 27 (testLeverage1): leverage() lands in the parent of the current workspace; with no
/// parent it detaches.
#[test]
fn i27_leverage_goes_to_parent() {
    let outer = ws("C27_OUT");
    let inner = ws("C27_IN");
    let _o = outer.notify_scope_entered().unwrap();
    let top_level = NdArray::<f32>::ones(&[3]).unwrap().leverage().unwrap();
    assert!(!top_level.is_attached(), "no parent: detached");
    let _i = inner.notify_scope_entered().unwrap();
    let a = NdArray::<f32>::ones(&[3]).unwrap();
    assert_eq!(a.workspace_id(), Some("C27_IN"));
    let b = a.leverage().unwrap();
    assert_eq!(b.workspace_id(), Some("C27_OUT"));
}

/// Item 28 (testIsAttached2/3): leverage_to on a detached array returns it unchanged.
#[test]
fn i28_leverage_to_detached_is_noop() {
    let outer = ws("C28");
    let _o = outer.notify_scope_entered().unwrap();
    let a = NdArray::<f64>::from_slice_detached(&[2], &[1.0, 2.0]).unwrap();
    let before = offset(&outer);
    let b = a.leverage_to("C28").unwrap();
    assert!(!b.is_attached());
    assert_eq!(offset(&outer), before);
}

/// Item 29 (testDtypeLeverage / testMigrateToWorkspace): leverage_to, detach and migrate keep
/// the element type (f32 and f64).
#[test]
fn i29_dtypes_preserved() {
    fn check<T: DataType>(value: T) {
        let outer = ws("C29_OUT");
        let inner = ws("C29_IN");
        let _o = outer.notify_scope_entered().unwrap();
        let _i = inner.notify_scope_entered().unwrap();
        let a = NdArray::<T>::full(&[4], value).unwrap();
        let l: NdArray<T> = a.dup().unwrap().leverage_to("C29_OUT").unwrap();
        let d: NdArray<T> = a.dup().unwrap().detach().unwrap();
        let m: NdArray<T> = d.dup().unwrap().migrate().unwrap();
        for x in [l, d, m] {
            assert_eq!(x.to_vec().unwrap(), vec![value; 4]);
        }
    }
    check(1.5f32);
    check(2.5f64);
}

type CopyOp = Box<dyn Fn(NdArray<f32>) -> Result<NdArray<f32>, ArrayError>>;

fn all_copy_ops_fail(make: impl Fn() -> NdArray<f32>) {
    let ops: [(&str, CopyOp); 7] = [
        ("leverage", Box::new(|a| a.leverage())),
        ("leverage_to", Box::new(|a| a.leverage_to("C3X_OUT"))),
        (
            "leverage_or_detach",
            Box::new(|a| a.leverage_or_detach("C3X_OUT")),
        ),
        ("detach", Box::new(|a| a.detach())),
        ("migrate", Box::new(|a| a.migrate())),
        ("migrate_or_detach", Box::new(|a| a.migrate_or_detach())),
        ("dup", Box::new(|a| a.dup())),
    ];
    for (name, op) in ops {
        let err = op(make()).expect_err(name);
        assert!(
            matches!(
                err,
                ArrayError::Workspace(WorkspaceError::StaleArray { .. })
            ),
            "{name}: {err}"
        );
    }
}

/// Item 30 (testInvalidLeverageMigrateDetach): a leaked array (its workspace closed) is refused
/// by every copy operation.
#[test]
fn i30_leaked_arrays_refused() {
    let outer = ws("C3X_OUT");
    let inner = ws("C30_IN");
    let _o = outer.notify_scope_entered().unwrap();
    all_copy_ops_fail(|| {
        let _i = inner.notify_scope_entered().unwrap();
        NdArray::<f32>::ones(&[3]).unwrap()
    });
}

/// Item 31 (testBadGenerationLeverageMigrateDetach): an outdated array (its workspace closed and
/// reopened) is refused by every copy operation.
#[test]
fn i31_outdated_arrays_refused() {
    let outer = ws("C3X_OUT");
    let inner = ws("C31_IN");
    let _o = outer.notify_scope_entered().unwrap();
    let stale = std::cell::RefCell::new(Vec::new());
    for _ in 0..7 {
        let _i = inner.notify_scope_entered().unwrap();
        stale.borrow_mut().push(NdArray::<f32>::ones(&[3]).unwrap());
    }
    let _reopened = inner.notify_scope_entered().unwrap();
    all_copy_ops_fail(|| stale.borrow_mut().pop().unwrap());
}

#[test]
fn leverage_to_missing_or_closed_workspace_is_an_error() {
    let inner = ws("C_MISSING_IN");
    let closed = ws("C_CLOSED");
    let _i = inner.notify_scope_entered().unwrap();
    let err = NdArray::<f32>::ones(&[2])
        .unwrap()
        .leverage_to("NOPE")
        .unwrap_err();
    assert!(err.to_string().contains("no workspace \"NOPE\""), "{err}");
    let err = NdArray::<f32>::ones(&[2])
        .unwrap()
        .leverage_to("C_CLOSED")
        .unwrap_err();
    assert!(
        err.to_string().contains("\"C_CLOSED\" is not open"),
        "{err}"
    );
    drop(closed);
    // leverage_or_detach falls back to detach for a closed target.
    let d = NdArray::<f32>::ones(&[2])
        .unwrap()
        .leverage_or_detach("C_CLOSED")
        .unwrap();
    assert!(!d.is_attached());
}

#[test]
fn migrate_copies_into_current() {
    let w = ws("C_MIGRATE");
    let heap = NdArray::<f64>::from_slice(&[2], &[1.0, 2.0]).unwrap();
    let same = heap.migrate().unwrap();
    assert!(!same.is_attached(), "no current workspace: unchanged");
    let _s = w.notify_scope_entered().unwrap();
    let moved = same.migrate().unwrap();
    assert_eq!(moved.workspace_id(), Some("C_MIGRATE"));
    let _out = scope_out_of_workspaces();
    let detached = moved.migrate_or_detach().unwrap();
    assert!(!detached.is_attached());
}

#[test]
fn reading_a_stale_array_is_the_catalogued_error() {
    let w = ws("C_STALE");
    let a = {
        let _s = w.notify_scope_entered().unwrap();
        NdArray::<f32>::zeros(&[4, 4]).unwrap()
    };
    let err = a.to_vec().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("stale array: 16 x f32 in workspace \"C_STALE\""),
        "{text}"
    );
    assert!(a.matmul(&a).is_err());
    assert!(!a.is_valid());
}
