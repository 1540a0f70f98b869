//! What the resolver tests share: plans written the way `fixtures/resolve` records apk's.
#![allow(dead_code)]

use sysroot_mk::resolve::Plan;

/// The plan in the expected-file format: `name-version`, plus ` @tag` when pinned.
pub fn lines(plan: &Plan) -> Vec<String> {
    plan.packages
        .iter()
        .zip(&plan.pinned_tags)
        .map(|(p, tag)| match tag {
            Some(tag) => format!("{} @{tag}", p.name_version()),
            None => p.name_version(),
        })
        .collect()
}
