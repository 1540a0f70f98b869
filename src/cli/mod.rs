//! Command-line parsing and the terminal reporter (binary only). OWNER: lead.

pub fn main() -> i32 {
    0
}
