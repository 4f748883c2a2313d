//! Whatever a topology file holds, `canopy` answers with diagnostics, never a panic,
//! and every diagnostic points inside the file.

use proptest::prelude::*;

fn examples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    v.sort();
    v
}

fn check(text: &str) {
    match canopy_gen::load_str("p.hcl", text) {
        Ok(l) => {
            // A valid topology renders without error too.
            let b = canopy_gen::render::diagram::mermaid(&l.model);
            assert!(b.starts_with("flowchart"));
        }
        Err(r) => {
            assert!(r.errors() > 0);
            for d in &r.diagnostics {
                if let Some(s) = &d.span {
                    assert!(
                        s.start <= s.end && s.end <= text.len(),
                        "{d:?} outside the file"
                    );
                }
            }
            let _ = r.to_string();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_gets_diagnostics_not_a_panic(text in "\\PC{0,400}") {
        check(&text);
    }

    /// Every example file (however many there are) takes every mutation.
    #[test]
    fn mutated_examples_get_diagnostics_not_a_panic(
        cuts in proptest::collection::vec((0usize..4000, 0usize..40, "\\PC{0,8}"), 1..6),
    ) {
        for example in examples() {
            let mut text = example;
            for (at, len, insert) in &cuts {
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) { at -= 1; }
                let mut end = (at + len).min(text.len());
                while !text.is_char_boundary(end) { end -= 1; }
                text.replace_range(at..end, insert);
            }
            check(&text);
        }
    }
}
