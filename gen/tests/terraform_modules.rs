//! The vendored modules: they reference only declared variables, locals and
//! resources, read only real outputs and real attributes, and their READMEs list every
//! input and output.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use support::*;

fn locals_defined(text: &str) -> BTreeSet<String> {
    parse("main.tf", text)
        .blocks()
        .filter(|b| b.ident.as_str() == "locals")
        .flat_map(|b| {
            b.body
                .attributes()
                .map(|a| a.key.as_str().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Inside each vendored module: every `var.` is declared, every `local.` defined,
/// every resource or data source referred to exists, and the cloud-init template
/// gets exactly the variables it uses.
#[test]
fn modules_refer_only_to_what_they_declare() {
    for m in MODULES {
        let main = module_file(m, "main.tf");
        let outputs = module_file(m, "outputs.tf");
        let vars = declared(&module_file(m, "variables.tf"), "variable");
        let text = format!("{main}\n{outputs}");
        let used = idents_after(&text, "var.");
        assert!(
            used.is_subset(&vars),
            "{m}: undeclared {:?}",
            used.difference(&vars)
        );
        let unused: Vec<_> = vars.difference(&used).collect();
        assert!(unused.is_empty(), "{m}: variables never used {unused:?}");
        let locals = locals_defined(&main);
        let used = idents_after(&text, "local.");
        assert!(
            used.is_subset(&locals),
            "{m}: undefined locals {:?}",
            used.difference(&locals)
        );
        let blocks = blocks2(&main);
        let mut refs = 0;
        for (kind, ty, name) in references(&text) {
            refs += 1;
            assert!(
                blocks.contains(&(kind.clone(), ty.clone(), name.clone())),
                "{m}: refers to {kind} {ty}.{name}, which is not declared"
            );
        }
        assert!(refs > 0, "{m}: no references found");
    }
    for m in ["aws", "gcp"] {
        let main = module_file(m, "main.tf");
        let tpl = module_file(m, "cloud-init.sh.tftpl");
        let given = templatefile_keys(&main);
        let wanted = template_vars(&tpl);
        assert_eq!(given, wanted, "{m}: templatefile arguments vs template");
        assert!(
            !tpl.contains("%{"),
            "{m}: the template uses only plain interpolation"
        );
    }
}

/// Every `TYPE.NAME` (resource) and `data.TYPE.NAME` reference in module text; block
/// labels and strings (preceded by a quote) are not references.
fn references(text: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for prefix in ["aws_", "google_", "null_"] {
        for (i, _) in text.match_indices(prefix) {
            let before = &text[..i];
            let (kind, prev) = match before.strip_suffix("data.") {
                Some(b) => ("data", b.chars().last()),
                None => ("resource", before.chars().last()),
            };
            if prev.is_some_and(|c| {
                c.is_ascii_alphanumeric() || c == '_' || c == '"' || c == '.' || c == '/'
            }) {
                continue;
            }
            let token: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            let parts: Vec<&str> = token.split('.').collect();
            if parts.len() >= 2 && !parts[1].is_empty() {
                out.insert((kind.to_string(), parts[0].to_string(), parts[1].to_string()));
            }
        }
    }
    out
}

/// The keys of the map passed to `templatefile(".../cloud-init.sh.tftpl", { ... })`.
fn templatefile_keys(main: &str) -> BTreeSet<String> {
    let start = main
        .find("cloud-init.sh.tftpl\", {")
        .expect("templatefile call");
    let body = &main[start..];
    let end = body.find("})").unwrap();
    body[..end]
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim().to_string()))
        .collect()
}

/// The `${name}` interpolations of a template (`$${` is a literal `${`).
fn template_vars(tpl: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = tpl.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'$' && b[i + 1] == b'$' {
            i += 2;
            continue;
        }
        if b[i] == b'$' && b[i + 1] == b'{' {
            let end = tpl[i..].find('}').unwrap() + i;
            out.insert(tpl[i + 2..end].to_string());
            i = end;
        }
        i += 1;
    }
    out
}

/// Attributes the providers document for the resource types whose attributes the
/// modules' outputs read (hashicorp/aws 5.80, hashicorp/google 6.12 docs).
fn documented_attributes(ty: &str) -> &'static [&'static str] {
    match ty {
        "aws_instance" => &["id", "arn", "private_ip", "public_ip", "availability_zone"],
        "aws_security_group" => &["id", "arn", "name"],
        "aws_lb" => &["id", "arn", "dns_name", "zone_id"],
        "aws_eip" => &["id", "public_ip", "allocation_id"],
        "aws_vpn_connection" => &["id", "tunnel1_address", "tunnel2_address"],
        "aws_vpc_peering_connection" => &["id", "accept_status"],
        "aws_kms_key" => &["arn", "key_id"],
        "google_compute_instance" => &["instance_id", "self_link", "network_interface"],
        "google_service_account" => &["email", "name", "unique_id"],
        "google_compute_forwarding_rule" => &["ip_address", "self_link"],
        "google_compute_ha_vpn_gateway" => &["vpn_interfaces", "self_link"],
        "null_resource" => &["id"],
        _ => &[],
    }
}

#[test]
fn module_outputs_read_documented_attributes_of_declared_resources() {
    for m in MODULES {
        let main = module_file(m, "main.tf");
        let blocks = blocks2(&main);
        let outputs = parse("outputs.tf", &module_file(m, "outputs.tf"));
        for o in outputs.blocks() {
            let value = o
                .body
                .get_attribute("value")
                .map(|a| a.value.to_string())
                .unwrap_or_default();
            // `for k, x in TYPE.NAME : ... x.ATTR` and `TYPE.NAME[...].ATTR`.
            let words: Vec<&str> = value
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .filter(|w| !w.is_empty())
                .collect();
            let mut bound: BTreeMap<String, String> = BTreeMap::new();
            for (i, w) in words.iter().enumerate() {
                if *w == "in" && i >= 1 {
                    if let Some(src) = words
                        .get(i + 1)
                        .filter(|s| value.contains(&format!("in {s} :")))
                    {
                        let ty = src.split('.').next().unwrap_or_default();
                        if blocks.iter().any(|(k, t, _)| k == "resource" && t == ty) {
                            bound.insert(words[i - 1].to_string(), ty.to_string());
                        }
                    }
                }
            }
            for w in &words {
                let parts: Vec<&str> = w.split('.').collect();
                if parts.len() >= 2 {
                    if let Some(ty) = bound.get(parts[0]) {
                        assert!(
                            documented_attributes(ty).contains(&parts[1]),
                            "{m}: output {} reads {}.{}, not a documented attribute of {ty}",
                            o.labels[0].as_str(),
                            parts[0],
                            parts[1]
                        );
                    }
                }
            }
            // Direct reads: TYPE.NAME[...].ATTR
            for (kind, ty, name) in &blocks {
                if kind != "resource" {
                    continue;
                }
                let prefix = format!("{ty}.{name}[");
                for (i, _) in value.match_indices(&prefix) {
                    let rest = &value[i + prefix.len()..];
                    let Some(close) = rest.find(']') else {
                        continue;
                    };
                    let attr: String = rest[close + 1..]
                        .trim_start_matches('.')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !attr.is_empty() {
                        assert!(
                            documented_attributes(ty).contains(&attr.as_str()),
                            "{m}: output {} reads {ty}.{name}[..].{attr}",
                            o.labels[0].as_str()
                        );
                    }
                }
            }
        }
    }
}

/// Each module's README lists every input and output it has, and nothing it lacks.
#[test]
fn module_readmes_list_every_input_and_output() {
    for m in MODULES {
        let readme = module_file(m, "README.md");
        let listed = |section: &str| -> BTreeSet<String> {
            let start = readme
                .find(&format!("## {section}"))
                .unwrap_or_else(|| panic!("{m}: README has no {section}"));
            let rest = &readme[start..];
            let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
            rest[..end]
                .lines()
                .filter_map(|l| l.strip_prefix("| `"))
                .filter_map(|l| l.split('`').next())
                .map(String::from)
                .collect()
        };
        assert_eq!(
            listed("Inputs"),
            declared(&module_file(m, "variables.tf"), "variable"),
            "{m}: README inputs"
        );
        assert_eq!(
            listed("Outputs"),
            declared(&module_file(m, "outputs.tf"), "output"),
            "{m}: README outputs"
        );
    }
}
