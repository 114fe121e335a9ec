//! coral_probe._native: the data plane of coral-probe. This file only
//! registers; each concern lives in its own module.

mod batch;
mod confine;
mod consumer;
mod error;
mod event;
mod fanout;
mod frames;
#[rustfmt::skip]
#[allow(clippy::all, dead_code)] // the agent's Python side uses the rest
mod gen;
mod latency;
mod memory;
mod python;
mod ringbuf;
mod symbols;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<error::NativeError>())?;
    m.add("EVENT_SIZE", event::CoralEvent::SIZE)?;
    m.add("COUNTER_NAMES", event::COUNTER_NAMES.to_vec())?;
    m.add("KERNEL_REFUSES", symbols::KERNEL_REFUSES)?;
    m.add_class::<python::PyRingConsumer>()?;
    m.add_class::<python::PyBatch>()?;
    m.add_function(wrap_pyfunction!(python::drain_ring, m)?)?;
    m.add_function(wrap_pyfunction!(python::demangle, m)?)?;
    m.add_function(wrap_pyfunction!(python::ret_offsets, m)?)?;
    m.add_class::<python::PyAttachPoints>()?;
    m.add_function(wrap_pyfunction!(python::attach_points, m)?)?;
    m.add_function(wrap_pyfunction!(python::entered_between, m)?)?;
    m.add_function(wrap_pyfunction!(python::page_out_libraries, m)?)?;
    m.add_function(wrap_pyfunction!(python::confine_self, m)?)?;
    m.add_function(wrap_pyfunction!(python::landlock_abi, m)?)?;
    Ok(())
}
