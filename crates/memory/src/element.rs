//! The element types a workspace buffer can hold. The trait is sealed and `unsafe`: the buffer
//! code reinterprets raw, always-initialized bytes as `[T]`, which is sound only for plain
//! numbers where every bit pattern is a valid value.

use std::fmt::Debug;

mod sealed {
    pub trait Sealed {}
}

/// A plain number type that workspace and heap buffers may hold.
///
/// # Safety
/// Implementors must be `Copy`, have no padding and no invalid bit patterns (any initialized
/// bytes of the right length are a valid value), an alignment that divides 64 and a size that
/// divides 64. The trait is sealed: only the primitive numbers below implement it.
pub unsafe trait Element:
    sealed::Sealed + Copy + Default + PartialEq + Debug + Send + Sync + 'static
{
    /// The type's name, for error messages.
    const NAME: &'static str;
}

macro_rules! element {
    ($($t:ty),*) => {
        $(
            impl sealed::Sealed for $t {}
            // SAFETY: a primitive number: no padding, every bit pattern valid, size and
            // alignment 1, 2, 4 or 8, all of which divide 64.
            unsafe impl Element for $t {
                const NAME: &'static str = stringify!($t);
            }
        )*
    };
}

element!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);
