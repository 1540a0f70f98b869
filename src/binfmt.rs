//! binfmt_misc: parse, register and remove handlers in the host's or a private instance.
//!
//! OWNER: enter helper. To be written.
