//! Terraform in every example's bundle and in the vendored modules: every .tf parses
//! (hcl-edit), is laid out as `terraform fmt` leaves it (aligned `=`, two-space
//! indents), references only declared variables, locals and resources, supplies every
//! module input, reads only real outputs and real attributes, and opens exactly the
//! ports each example's topology needs. checkov judges every bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
        .collect();
    v.sort();
    v
}

fn modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/modules")
}

const MODULES: [&str; 3] = ["aws", "gcp", "onprem"];

fn module_file(module: &str, file: &str) -> String {
    std::fs::read_to_string(modules_dir().join(module).join(file)).unwrap_or_default()
}

/// Every (path, text) of files under `terraform/` of an example's bundle.
fn tf_files(example: &Path) -> BTreeMap<String, String> {
    let l = canopy_gen::load(example).unwrap_or_else(|e| panic!("{e}"));
    let b = canopy_gen::build_bundle(&l.model, &Default::default(), &Default::default()).unwrap();
    b.files
        .iter()
        .filter(|(p, _)| p.starts_with("terraform"))
        .map(|(p, (bytes, _))| {
            (
                p.to_string_lossy().into_owned(),
                String::from_utf8(bytes.clone()).unwrap(),
            )
        })
        .collect()
}

/// terraform fmt's layout, the parts we rely on: two-space indents, the `=` of
/// consecutive one-line attributes at one indent aligned, and a multi-line value
/// standing alone as `key = {` (terraform 1.11 confirmed these rules here).
fn layout_problems(path: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<(usize, usize, usize)> = Vec::new(); // (line, indent, eq column)
    let flush = |run: &mut Vec<(usize, usize, usize)>, out: &mut Vec<String>| {
        if let Some(first) = run.first() {
            if run.iter().any(|r| r.2 != first.2) {
                out.push(format!(
                    "{path}:{}: unaligned `=` in {} lines",
                    first.0,
                    run.len()
                ));
            }
        }
        run.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start();
        if !t.is_empty() && !t.starts_with('#') && indent % 2 != 0 {
            out.push(format!("{path}:{}: indent of {indent}", i + 1));
        }
        if line.ends_with(' ') {
            out.push(format!("{path}:{}: trailing space", i + 1));
        }
        let is_attr = {
            let key_end = t
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '"'))
                .unwrap_or(0);
            key_end > 0 && t[key_end..].trim_start().starts_with("= ")
                || t[key_end..].trim_start().starts_with("=\n")
        };
        // A multi-line value ends the run: its closing line is not an attribute.
        let one_line = is_attr && !t.ends_with('{') && !t.ends_with('[') && !t.ends_with('(');
        if is_attr && !one_line {
            flush(&mut run, &mut out);
            if t.contains("  =") {
                out.push(format!(
                    "{path}:{}: a multi-line value is not aligned",
                    i + 1
                ));
            }
        } else if is_attr {
            let eq = line.find(" = ").map(|c| c + 1).unwrap_or(0);
            if run.last().is_some_and(|r| r.1 != indent) {
                flush(&mut run, &mut out);
            }
            run.push((i + 1, indent, eq));
        } else {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    if text.contains("\n\n\n") {
        out.push(format!("{path}: two blank lines in a row"));
    }
    if !text.ends_with('\n') || text.ends_with("\n\n") {
        out.push(format!("{path}: must end with exactly one newline"));
    }
    out
}

fn idents_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn parse(path: &str, text: &str) -> hcl_edit::structure::Body {
    hcl_edit::parser::parse_body(text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn declared(text: &str, kind: &str) -> BTreeSet<String> {
    parse(kind, text)
        .blocks()
        .filter(|b| b.ident.as_str() == kind)
        .filter_map(|b| b.labels.first().map(|l| l.as_str().to_string()))
        .collect()
}

/// (kind, type, name) of every resource and data block.
fn blocks2(text: &str) -> BTreeSet<(String, String, String)> {
    parse("main.tf", text)
        .blocks()
        .filter(|b| matches!(b.ident.as_str(), "resource" | "data") && b.labels.len() == 2)
        .map(|b| {
            (
                b.ident.as_str().to_string(),
                b.labels[0].as_str().to_string(),
                b.labels[1].as_str().to_string(),
            )
        })
        .collect()
}

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

#[test]
fn every_tf_file_parses_and_is_laid_out_as_terraform_fmt_leaves_it() {
    let mut n = 0;
    for ex in examples() {
        for (path, text) in tf_files(&ex) {
            if !path.ends_with(".tf") {
                continue;
            }
            parse(&path, &text);
            let problems = layout_problems(&path, &text);
            assert!(problems.is_empty(), "{problems:#?}\n{text}");
            n += 1;
        }
    }
    assert!(n > 0, "no Terraform was generated");
    // The hand-written modules are held to the same layout.
    for m in MODULES {
        for e in std::fs::read_dir(modules_dir().join(m)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "tf") {
                let text = std::fs::read_to_string(&p).unwrap();
                parse(&p.display().to_string(), &text);
                let problems = layout_problems(&p.display().to_string(), &text);
                assert!(problems.is_empty(), "{problems:#?}");
                n += 1;
            }
        }
    }
    assert!(n > 60, "only {n} .tf files checked");
}

#[test]
fn the_layout_check_catches_unaligned_attributes() {
    let bad = "resource \"x\" \"y\" {\n  a = 1\n  long_name = 2\n}\n";
    assert_eq!(layout_problems("t.tf", bad).len(), 1);
    let good = "resource \"x\" \"y\" {\n  a         = 1\n  long_name = 2\n}\n";
    assert!(layout_problems("t.tf", good).is_empty());
    // A multi-line value stands alone: not aligned with the attributes before it.
    let bad = "variable \"v\" {\n  description = \"d\"\n  type        = map(object({\n    a = string\n  }))\n}\n";
    assert_eq!(layout_problems("t.tf", bad).len(), 1);
    let good = "variable \"v\" {\n  description = \"d\"\n  type = map(object({\n    a = string\n  }))\n}\n";
    assert!(layout_problems("t.tf", good).is_empty());
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

/// A root module of a bundle: (dir, module it calls).
fn roots(files: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut v: BTreeSet<(String, String)> = BTreeSet::new();
    for p in files.keys() {
        let parts: Vec<&str> = p.split('/').collect();
        if parts.len() == 4 && parts[3] == "main.tf" && parts[1] != "modules" {
            let main = &files[p];
            let body = parse(p, main);
            let m = body
                .blocks()
                .find(|b| b.ident.as_str() == "module")
                .expect("module block");
            let source = m
                .body
                .get_attribute("source")
                .map(|a| a.value.to_string())
                .unwrap_or_default();
            let module = source
                .trim()
                .trim_matches('"')
                .trim_start_matches("../../modules/")
                .to_string();
            v.insert((format!("{}/{}/{}", parts[0], parts[1], parts[2]), module));
        }
    }
    v.into_iter().collect()
}

#[test]
fn root_modules_declare_what_they_use_and_supply_every_module_input() {
    let mut per_provider: BTreeMap<String, usize> = BTreeMap::new();
    for ex in examples() {
        let files = tf_files(&ex);
        for (root, module) in roots(&files) {
            *per_provider.entry(module.clone()).or_default() += 1;
            let get = |f: &str| {
                files
                    .get(&format!("{root}/{f}"))
                    .cloned()
                    .unwrap_or_default()
            };
            // The module it calls is vendored in the bundle, byte for byte.
            for f in ["main.tf", "variables.tf", "outputs.tf", "versions.tf"] {
                assert_eq!(
                    files.get(&format!("terraform/modules/{module}/{f}")),
                    Some(&module_file(&module, f)),
                    "{root}: vendored {module}/{f}"
                );
            }
            for f in [
                "main.tf",
                "variables.tf",
                "outputs.tf",
                "versions.tf",
                "backend.tf",
                "terraform.tfvars.example",
                "README.md",
            ] {
                assert!(files.contains_key(&format!("{root}/{f}")), "{root}: no {f}");
            }
            let vars = declared(&get("variables.tf"), "variable");
            let used: BTreeSet<String> = ["main.tf", "outputs.tf"]
                .iter()
                .flat_map(|f| idents_after(&get(f), "var."))
                .collect();
            assert!(
                used.is_subset(&vars),
                "{root}: uses {used:?}, declares {vars:?}"
            );
            // Variables used in validations only count as used too.
            let unused: Vec<_> = vars.difference(&used).collect();
            assert!(unused.is_empty(), "{root}: declares unused {unused:?}");
            // Every variable the tfvars example sets is declared.
            let tfvars = parse("tfvars", &get("terraform.tfvars.example"));
            for a in tfvars.attributes() {
                assert!(
                    vars.contains(a.key.as_str()),
                    "{root}: tfvars example sets undeclared {}",
                    a.key.as_str()
                );
            }
            // Module inputs: the attributes of `module "site"`.
            let module_vars_text = module_file(&module, "variables.tf");
            let body = parse("variables.tf", &module_vars_text);
            let mut required = BTreeSet::new();
            let mut all_inputs = BTreeSet::new();
            for b in body.blocks().filter(|b| b.ident.as_str() == "variable") {
                let name = b.labels[0].as_str().to_string();
                all_inputs.insert(name.clone());
                if !b.body.has_attribute("default") {
                    required.insert(name);
                }
            }
            let main = parse("main.tf", &get("main.tf"));
            let m = main
                .blocks()
                .find(|b| b.ident.as_str() == "module")
                .expect("module block");
            let given: BTreeSet<String> = m
                .body
                .attributes()
                .map(|a| a.key.as_str().to_string())
                .filter(|k| k != "source")
                .collect();
            assert!(
                required.is_subset(&given),
                "{root}: missing inputs {:?}",
                required.difference(&given)
            );
            assert!(
                given.is_subset(&all_inputs),
                "{root}: unknown inputs {:?}",
                given.difference(&all_inputs)
            );
            let module_outputs = declared(&module_file(&module, "outputs.tf"), "output");
            let read = idents_after(&get("outputs.tf"), "module.site.");
            assert!(
                read.is_subset(&module_outputs),
                "{root}: reads {read:?}, module has {module_outputs:?}"
            );
            // Every VPN key file the root reads is in the bundle's secrets.
            for (i, _) in get("main.tf").match_indices("secrets/vpn-") {
                let rest = &get("main.tf")[i..];
                let path: String = rest.chars().take_while(|c| *c != '"').collect();
                let l = canopy_gen::load(&ex).unwrap();
                let b =
                    canopy_gen::build_bundle(&l.model, &Default::default(), &Default::default())
                        .unwrap();
                assert!(
                    b.files.contains_key(Path::new(&path)),
                    "{root}: reads {path}, which the bundle lacks"
                );
            }
        }
    }
    for p in ["aws", "gcp", "onprem"] {
        assert!(
            per_provider.get(p).copied().unwrap_or(0) >= 2,
            "the examples give {p} root modules: {per_provider:?}"
        );
    }
}

// ---- firewall: exactly the ports each topology needs -----------------------------

type Rule = (String, u16, String, Vec<String>);

/// The ingress the module makes from a root module's inputs, expanded the way the
/// modules' locals expand them: client port from client_cidrs, monitoring from
/// admin_cidrs, leafnode port from leaf_cidrs, cluster port from the cluster.
fn ingress_from_root(main: &str) -> BTreeSet<Rule> {
    let body = parse("main.tf", main);
    let m = body
        .blocks()
        .find(|b| b.ident.as_str() == "module")
        .unwrap();
    let list = |k: &str| -> Vec<String> {
        m.body
            .get_attribute(k)
            .map(|a| {
                a.value
                    .to_string()
                    .trim()
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (clients, admins, leafs) = (
        list("client_cidrs"),
        list("admin_cidrs"),
        list("leaf_cidrs"),
    );
    let servers = m.body.get_attribute("servers").expect("servers");
    let hcl_edit::expr::Expression::Object(obj) = &servers.value else {
        panic!("servers is an object")
    };
    let mut out = BTreeSet::new();
    for (k, v) in obj.iter() {
        let name = key_str(k);
        let hcl_edit::expr::Expression::Object(fields) = v.expr() else {
            panic!("server is an object")
        };
        let field = |f: &str| -> String {
            fields
                .iter()
                .find(|(k, _)| key_str(k) == f)
                .map(|(_, v)| v.expr().to_string().trim().trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let port = |f: &str| field(f).parse::<u16>().unwrap();
        let mut add = |p: u16, what: &str, from: Vec<String>| {
            if p > 0 && !from.is_empty() {
                out.insert((name.clone(), p, what.to_string(), from));
            }
        };
        add(port("client_port"), "client", clients.clone());
        add(port("monitor_port"), "monitoring", admins.clone());
        add(port("leaf_port"), "leafnode", leafs.clone());
        add(
            port("cluster_port"),
            "cluster",
            vec![format!("cluster {}", field("cluster"))],
        );
    }
    out
}

fn key_str(k: &hcl_edit::expr::ObjectKey) -> String {
    match k {
        hcl_edit::expr::ObjectKey::Ident(i) => i.as_str().to_string(),
        hcl_edit::expr::ObjectKey::Expression(e) => e
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| e.to_string().trim().to_string()),
    }
}

fn rules(rows: &[(&str, u16, &str, &[&str])]) -> BTreeSet<Rule> {
    rows.iter()
        .map(|(s, p, w, f)| {
            (
                s.to_string(),
                *p,
                w.to_string(),
                f.iter().map(|x| x.to_string()).collect(),
            )
        })
        .collect()
}

/// A hub server's four openings and a leaf's two.
fn hub(
    name: &str,
    cluster: &str,
    clients: &'static [&'static str],
    admins: &'static [&'static str],
    leafs: &'static [&'static str],
) -> Vec<Rule> {
    let cl = format!("cluster {cluster}");
    vec![
        (name.into(), 4222, "client".into(), strs(clients)),
        (name.into(), 8222, "monitoring".into(), strs(admins)),
        (name.into(), 7422, "leafnode".into(), strs(leafs)),
        (name.into(), 6222, "cluster".into(), vec![cl]),
    ]
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// What each example's cloud sites must open, written out from the topologies.
fn expected_openings() -> BTreeMap<(&'static str, &'static str), BTreeSet<Rule>> {
    const EU: &[&str] = &["10.2.0.0/16"];
    const APAC: &[&str] = &["10.3.0.0/16"];
    let mut expected: BTreeMap<(&str, &str), BTreeSet<Rule>> = BTreeMap::new();
    // multi-region: US clients come from the VPC and an office; admins from a VPN
    // range; the US hubs take leaves from the US leaf and the EU and APAC hubs.
    let us_clients: &'static [&'static str] = &["10.1.0.0/16", "172.16.0.0/16"];
    let us_admins: &'static [&'static str] = &["10.255.0.0/24"];
    let mut us = BTreeSet::new();
    for i in 1..=3 {
        us.extend(hub(
            &format!("us-hub-{i}"),
            "us-hub",
            us_clients,
            us_admins,
            &["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"],
        ));
    }
    us.extend(rules(&[
        ("us-leaf-1", 4222, "client", us_clients),
        ("us-leaf-1", 8222, "monitoring", us_admins),
    ]));
    expected.insert(("multi-region", "terraform/aws/us"), us);
    for (site, cidr, region) in [("eu", EU, "aws"), ("apac", APAC, "gcp")] {
        let mut r = BTreeSet::new();
        for i in 1..=3 {
            r.extend(hub(
                &format!("{site}-hub-{i}"),
                &format!("{site}-hub"),
                cidr,
                cidr,
                cidr,
            ));
        }
        let leaf = format!("{site}-leaf-1");
        r.insert((leaf.clone(), 4222, "client".into(), strs(cidr)));
        r.insert((leaf, 8222, "monitoring".into(), strs(cidr)));
        let dir: &'static str = Box::leak(format!("terraform/{region}/{site}").into_boxed_str());
        expected.insert(("multi-region", dir), r);
    }
    // cloud-ingress: the AWS hubs take the data center's leaf (over IPsec) and the
    // shop's (its site's CIDR; through the external balancer, whose own security group
    // admits leaf_public_cidrs).
    let mut ingress = BTreeSet::new();
    for i in 1..=3 {
        ingress.extend(hub(
            &format!("cloud-hub-{i}"),
            "cloud-hub",
            &["10.70.0.0/16"],
            &["10.70.250.0/24"],
            &["10.201.0.0/24", "192.168.16.0/20"],
        ));
    }
    expected.insert(("cloud-ingress", "terraform/aws/aws"), ingress);
    // hybrid-cloud: each cloud site holds one leaf; nobody dials into the cloud.
    expected.insert(
        ("hybrid-cloud", "terraform/aws/aws"),
        rules(&[
            ("aws-leaf", 4222, "client", &["10.50.0.0/16"]),
            ("aws-leaf", 8222, "monitoring", &["10.50.0.0/16"]),
        ]),
    );
    expected.insert(
        ("hybrid-cloud", "terraform/gcp/gcp"),
        rules(&[
            ("gcp-leaf", 4222, "client", &["10.60.0.0/16"]),
            ("gcp-leaf", 8222, "monitoring", &["10.60.0.0/16"]),
        ]),
    );

    expected
}

#[test]
fn security_groups_and_firewalls_open_exactly_the_ports_each_topology_needs() {
    let expected = expected_openings();
    let mut seen = BTreeSet::new();
    for ex in examples() {
        let name = ex.file_stem().unwrap().to_string_lossy().into_owned();
        let files = tf_files(&ex);
        let l = canopy_gen::load(&ex).unwrap();
        for (root, module) in roots(&files) {
            if module == "onprem" {
                continue;
            }
            let key = expected
                .keys()
                .find(|(e, r)| *e == name && *r == root)
                .copied()
                .unwrap_or_else(|| panic!("no expected firewall for {name} {root}"));
            seen.insert(key);
            let want = &expected[&key];
            let got = ingress_from_root(&files[&format!("{root}/main.tf")]);
            assert_eq!(&got, want, "{name} {root}: the Terraform inputs");
            // The model's own account of it (the README table) agrees.
            let site_name = root.rsplit('/').next().unwrap();
            let site = l.model.site(site_name).unwrap();
            let from_model: BTreeSet<Rule> =
                canopy_gen::render::terraform::firewall::openings(&l.model, site)
                    .into_iter()
                    .map(|o| (o.server, o.port, o.what.to_string(), o.from))
                    .collect();
            assert_eq!(&from_model, want, "{name} {root}: openings()");
        }
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "every expected site was generated"
    );

    // The modules make no ingress but these rules: AWS through per-rule resources only
    // (no inline or legacy rules), GCP through the `ingress` and `cluster` rules and
    // the load balancer's; everything else in GCP is egress.
    let aws = module_file("aws", "main.tf");
    assert!(!aws.contains("resource \"aws_security_group_rule\""));
    assert!(!aws.contains("  ingress {") && !aws.contains("  egress {"));
    let ingress: BTreeSet<String> = blocks2(&aws)
        .into_iter()
        .filter(|(_, t, _)| t == "aws_vpc_security_group_ingress_rule")
        .map(|(_, _, n)| n)
        .collect();
    assert_eq!(
        ingress,
        ["cluster", "from_lb", "lb", "server"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let gcp = parse("gcp", &module_file("gcp", "main.tf"));
    let mut gcp_ingress = BTreeSet::new();
    for b in gcp.blocks() {
        if b.labels.first().map(|l| l.as_str()) == Some("google_compute_firewall") {
            let dir = b
                .body
                .get_attribute("direction")
                .map(|a| a.value.to_string())
                .unwrap_or_default();
            if dir.contains("INGRESS") {
                gcp_ingress.insert(b.labels[1].as_str().to_string());
            } else {
                assert!(dir.contains("EGRESS"), "a firewall without a direction");
            }
        }
    }
    assert_eq!(
        gcp_ingress,
        ["cluster", "ingress"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[test]
fn vpn_ends_match_across_sites() {
    // multi-region: us (aws) ↔ apac (gcp) is an IPsec VPN; us ↔ eu (both aws) a peering.
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/multi-region.hcl");
    let files = tf_files(&ex);
    let us = &files["terraform/aws/us/main.tf"];
    let apac = &files["terraform/gcp/apac/main.tf"];
    let eu = &files["terraform/aws/eu/main.tf"];
    let attr = |text: &str, link: &str, key: &str| -> String {
        let start = text.find(&format!("\"{link}\" = {{")).unwrap();
        let block = &text[start..];
        let block = &block[..block.find("\n    }").unwrap()];
        block
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(" = ")?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("{key} in {block}"))
    };
    // The same inside /30s on both ends; each end names the other's ASN and CIDR.
    assert_eq!(
        attr(us, "us-apac", "inside_cidrs"),
        attr(apac, "us-apac", "inside_cidrs")
    );
    let asn = |text: &str, key: &str| -> String {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(" = ")?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
            .unwrap()
    };
    assert_eq!(attr(us, "us-apac", "peer_asn"), asn(apac, "router_asn"));
    assert_eq!(
        attr(apac, "us-apac", "peer_asn"),
        asn(us, "amazon_side_asn")
    );
    assert_ne!(asn(us, "amazon_side_asn"), asn(apac, "router_asn"));
    assert_eq!(attr(us, "us-apac", "peer_cidrs"), "[\"10.3.0.0/16\"]");
    assert_eq!(attr(apac, "us-apac", "peer_cidrs"), "[\"10.1.0.0/16\"]");
    // AWS takes .1 of each /30, so the GCP end takes .2.
    assert_eq!(attr(apac, "us-apac", "local_host"), "2");
    // Both ends read one pre-shared key from the bundle's secrets.
    let psk = "secrets/vpn-us-apac.psk";
    assert!(us.contains(psk) && apac.contains(psk));
    // One end requests the peering, the other accepts it.
    assert_eq!(attr(eu, "us-eu", "role"), "\"requester\"");
    assert_eq!(attr(us, "us-eu", "role"), "\"accepter\"");
    assert_eq!(attr(eu, "us-eu", "peer_cidr"), "\"10.1.0.0/16\"");
    assert_eq!(attr(us, "us-eu", "peer_cidr"), "\"10.2.0.0/16\"");

    // hybrid-cloud: gcp ↔ dc (on-prem) is a VPN; the on-prem README tells the router
    // the same ASNs, /30s and key file.
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hybrid-cloud.hcl");
    let files = tf_files(&ex);
    let gcp = &files["terraform/gcp/gcp/main.tf"];
    let readme = &files["terraform/onprem/dc/README.md"];
    let cidrs = attr(gcp, "dc-gcp", "inside_cidrs");
    for c in cidrs
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|c| c.trim_matches('"'))
    {
        assert!(readme.contains(c), "{readme}");
    }
    assert!(readme.contains(&format!("peer ASN {}", asn(gcp, "router_asn"))));
    assert!(readme.contains("secrets/vpn-dc-gcp.psk"));
    assert_eq!(attr(gcp, "dc-gcp", "local_host"), "1");
    assert!(readme.contains("this end .2"), "{readme}");
}

#[test]
fn user_data_and_metadata_name_secrets_but_hold_none() {
    for m in ["aws", "gcp"] {
        let tpl = module_file(m, "cloud-init.sh.tftpl");
        for bad in [
            "PRIVATE KEY",
            "password",
            "secret_string",
            "secret_data",
            "psk",
        ] {
            assert!(
                !tpl.to_lowercase().contains(&bad.to_lowercase()),
                "{m}: cloud-init mentions {bad}"
            );
        }
        let main = module_file(m, "main.tf");
        let args = &main[main.find("cloud-init.sh.tftpl\", {").unwrap()..];
        let args = &args[..args.find("})").unwrap()];
        assert!(
            !args.contains("file("),
            "{m}: no file contents in user-data"
        );
    }
}

#[test]
fn the_allowlist_gives_a_reason_for_every_skipped_check() {
    let text = std::fs::read_to_string(modules_dir().join("../checkov.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut skipped = 0;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        if let Some(id) = t.strip_prefix("- ") {
            skipped += 1;
            // The comment block above this entry (possibly shared with the entries
            // right before it) names the check.
            let mut j = i;
            while j > 0 && lines[j - 1].trim().starts_with("- ") {
                j -= 1;
            }
            let mut reason = String::new();
            while j > 0 && lines[j - 1].trim().starts_with('#') {
                j -= 1;
                reason = format!("{} {reason}", lines[j]);
            }
            assert!(
                reason.contains(id) && reason.len() > 80,
                "{id} is skipped without a reason"
            );
        }
    }
    assert!(skipped <= 12, "the allowlist is meant to stay short");
}

/// Every example's bundle written under `root`: (name, model, bundle directory).
fn generated(root: &Path) -> Vec<(String, canopy_gen::model::Model, PathBuf)> {
    examples()
        .into_iter()
        .map(|ex| {
            let name = ex.file_stem().unwrap().to_string_lossy().into_owned();
            let l = canopy_gen::load(&ex).unwrap_or_else(|e| panic!("{e}"));
            let out = root.join(&name);
            canopy_gen::generate(&l.model, &out, &Default::default()).unwrap();
            (name, l.model, out)
        })
        .collect()
}

/// Whether `program --version-ish` runs; if not, say loudly what goes untested.
fn tool(program: &str, version_arg: &str, skipped: &str) -> bool {
    let ok = std::process::Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("!!! SKIPPING {skipped}: {program} is not installed !!!");
    }
    ok
}

/// terraform with the pinned hashicorp/aws from a local filesystem mirror
/// (CANOPY_TF_MIRROR, default /opt/tf-plugins): the real provider schema, offline.
struct AwsTerraform {
    _dir: tempfile::TempDir,
    rc: PathBuf,
}

impl AwsTerraform {
    /// None (after a loud skip naming `what`) without terraform or the mirrored provider.
    fn find(what: &str) -> Option<AwsTerraform> {
        if !tool("terraform", "version", what) {
            return None;
        }
        let mirror = std::env::var("CANOPY_TF_MIRROR").unwrap_or_else(|_| "/opt/tf-plugins".into());
        let version = pinned("aws", "aws");
        let provider = Path::new(&mirror).join(format!(
            "registry.terraform.io/hashicorp/aws/{version}/linux_amd64"
        ));
        if !provider.is_dir() {
            eprintln!(
                "!!! SKIPPING {what}: hashicorp/aws {version} is not in the mirror {mirror} !!!"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let rc = dir.path().join("terraformrc");
        std::fs::write(
            &rc,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{mirror}\"\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n}}\n"
            ),
        )
        .unwrap();
        Some(AwsTerraform { _dir: dir, rc })
    }

    /// Run terraform in `dir`; it must succeed. Its stdout.
    fn run(&self, dir: &Path, args: &[String]) -> Vec<u8> {
        let run = std::process::Command::new("terraform")
            .args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", &self.rc)
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}: terraform {}:\n{}{}",
            dir.display(),
            args.join(" "),
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        run.stdout
    }

    fn init(&self, dir: &Path) {
        self.run(
            dir,
            &args(&["init", "-backend=false", "-input=false", "-no-color"]),
        );
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The AWS root modules of a bundle.
fn aws_sites(bundle: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(bundle.join("terraform/aws"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn checkov_passes_on_every_bundle() {
    if !tool(
        "checkov",
        "--version",
        "checkov (pip install checkov; .ci/run does)",
    ) {
        return;
    }
    let allow = modules_dir().join("../checkov.yaml");
    let mut checked = 0;
    let tmp = tempfile::tempdir().unwrap();
    for (name, model, out) in generated(tmp.path()) {
        if !out.join("terraform").exists() {
            continue;
        }
        let run = std::process::Command::new("checkov")
            .args([
                "-d",
                "terraform",
                "--framework",
                "terraform",
                "--compact",
                "--config-file",
            ])
            .arg(&allow)
            .env("BC_SKIP_MAPPING", "TRUE")
            .current_dir(&out)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{name}: checkov failed:\n{stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        // It looked at something: cloud bundles have hundreds of passing checks.
        let passed: usize = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Passed checks: "))
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if model.sites.iter().any(|s| s.is_cloud()) {
            assert!(passed > 100, "{name}: checkov passed only {passed}");
        }
        checked += 1;
    }
    assert!(checked >= 5);
}

/// Where a terraform binary exists, `terraform fmt -check` has the last word on every
/// bundle's layout (without one, the layout checker above stands in).
#[test]
fn terraform_fmt_accepts_every_bundle_where_terraform_exists() {
    if !tool(
        "terraform",
        "version",
        "terraform fmt -check (the layout checker ran instead)",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (name, _, out) in generated(tmp.path()) {
        if !out.join("terraform").exists() {
            continue;
        }
        let run = std::process::Command::new("terraform")
            .args(["fmt", "-check", "-recursive", "-diff", "terraform"])
            .current_dir(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: terraform fmt would change:\n{}",
            String::from_utf8_lossy(&run.stdout)
        );
    }
}

/// The pinned version of a provider in a module's versions.tf.
fn pinned(module: &str, provider: &str) -> String {
    let text = module_file(module, "versions.tf");
    let at = text.find(&format!("{provider} = {{")).unwrap();
    let rest = &text[at..];
    let v = rest.find("version").unwrap();
    rest[v..].split('"').nth(1).unwrap().to_string()
}

/// `terraform validate` on every AWS root module of every example, with the provider
/// from a local filesystem mirror (CANOPY_TF_MIRROR, default /opt/tf-plugins): it
/// checks every argument name and type against the real provider schema. Needs a
/// terraform binary and the pinned hashicorp/aws in the mirror; skips loudly without.
#[test]
fn terraform_validate_accepts_every_aws_root_module_where_the_provider_is_mirrored() {
    let Some(tf) = AwsTerraform::find("terraform validate") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut validated = 0;
    for (_, _, out) in generated(tmp.path()) {
        for dir in aws_sites(&out) {
            tf.init(&dir);
            tf.run(&dir, &args(&["validate", "-no-color"]));
            validated += 1;
        }
    }
    assert!(validated >= 3, "validated {validated} AWS root modules");
}

/// A moto server (AWS API mock, `pip install 'moto[server]'`) on a free local port.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    fn start() -> Option<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let m = Moto { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(m);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    }

    /// Terraform override pointing the AWS provider at the mock.
    fn provider_override(&self) -> String {
        let url = format!("http://127.0.0.1:{}", self.port);
        let services = [
            "ec2",
            "iam",
            "s3",
            "secretsmanager",
            "kms",
            "ssm",
            "sts",
            "cloudwatchlogs",
            "elbv2",
        ];
        let mut s = String::from("provider \"aws\" {\n  access_key                  = \"test\"\n  secret_key                  = \"test\"\n  skip_credentials_validation = true\n  skip_requesting_account_id  = true\n  skip_metadata_api_check     = true\n  s3_use_path_style           = true\n\n  endpoints {\n");
        for svc in services {
            s.push_str(&format!("    {svc:<14} = \"{url}\"\n"));
        }
        s.push_str("  }\n}\n");
        s
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `terraform plan` of every AWS root module against moto, with every VPN peer and
/// peering filled in: the modules evaluate (no for_each over unknown values, no type
/// errors), every server gets an instance, and the planned security-group rules are
/// exactly the openings each topology needs.
#[test]
fn terraform_plan_of_every_aws_site_against_a_mock_opens_exactly_the_expected_ports() {
    let Some(tf) = AwsTerraform::find("terraform plan") else {
        return;
    };
    let Some(moto) = Moto::start() else {
        eprintln!("!!! SKIPPING terraform plan: moto_server is not installed (pip install 'moto[server]'; .ci/run does) !!!");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("server-binary");
    std::fs::write(&binary, b"a stand-in binary").unwrap();
    let expected = expected_openings();
    let mut planned = 0;
    for (name, model, out) in generated(tmp.path()) {
        for dir in aws_sites(&out) {
            let site_name = dir.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::write(dir.join("moto_override.tf"), moto.provider_override()).unwrap();
            let main = std::fs::read_to_string(dir.join("main.tf")).unwrap();
            // Every peer value the README says to fill in after the peer's apply.
            let mut vars = vec![format!("server_binary={}", binary.display())];
            if std::fs::read_to_string(dir.join("variables.tf"))
                .unwrap()
                .contains("variable \"leaf_public_cidrs\"")
            {
                vars.push("leaf_public_cidrs=[\"198.51.100.0/24\"]".into());
            }
            for (var, value) in [
                ("vpn_peer_ips", "\"203.0.113.10\""),
                ("peer_vpc_ids", "\"vpc-0123456789abcdef0\""),
                ("peering_ids", "\"pcx-0123456789abcdef0\""),
            ] {
                let links: Vec<String> = main
                    .match_indices(&format!("lookup(var.{var}, \""))
                    .map(|(i, m)| {
                        let rest = &main[i + m.len()..];
                        rest[..rest.find('"').unwrap()].to_string()
                    })
                    .map(|link| format!("\"{link}\" = {value}"))
                    .collect();
                if !links.is_empty() {
                    vars.push(format!("{var}={{ {} }}", links.join(", ")));
                }
            }
            tf.init(&dir);
            let mut plan = vec![
                "plan".to_string(),
                "-input=false".into(),
                "-no-color".into(),
                "-out=plan.bin".into(),
            ];
            for v in &vars {
                plan.push("-var".into());
                plan.push(v.clone());
            }
            tf.run(&dir, &plan);
            let json = tf.run(&dir, &args(&["show", "-json", "plan.bin"]));
            let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let changes = json["resource_changes"].as_array().unwrap();
            let of_type = |ty: &str, name: &str| -> Vec<&serde_json::Value> {
                changes
                    .iter()
                    .filter(|c| c["type"] == ty && c["name"] == name)
                    .collect()
            };
            // One instance per server, a volume per JetStream server.
            let servers: Vec<_> = model
                .servers
                .iter()
                .filter(|s| s.site == site_name)
                .collect();
            assert_eq!(of_type("aws_instance", "server").len(), servers.len());
            assert_eq!(
                of_type("aws_ebs_volume", "jetstream").len(),
                servers.iter().filter(|s| s.jetstream.is_some()).count()
            );
            // The planned ingress, as (server, port, sources).
            let mut got: BTreeMap<(String, u16), BTreeSet<String>> = BTreeMap::new();
            for c in of_type("aws_vpc_security_group_ingress_rule", "server") {
                let key = c["index"].as_str().unwrap();
                let server = key.split('/').next().unwrap().to_string();
                let after = &c["change"]["after"];
                let port = after["from_port"].as_u64().unwrap() as u16;
                assert_eq!(after["to_port"], after["from_port"]);
                assert_eq!(after["ip_protocol"], "tcp");
                got.entry((server, port))
                    .or_default()
                    .insert(after["cidr_ipv4"].as_str().unwrap().to_string());
            }
            for c in of_type("aws_vpc_security_group_ingress_rule", "cluster") {
                let server = c["index"].as_str().unwrap().to_string();
                let port = c["change"]["after"]["from_port"].as_u64().unwrap() as u16;
                got.entry((server, port))
                    .or_default()
                    .insert("cluster".into());
            }
            let want: BTreeMap<(String, u16), BTreeSet<String>> = expected
                [&(name.as_str(), format!("terraform/aws/{site_name}").as_str())]
                .iter()
                .map(|(s, p, what, from)| {
                    let from = if what == "cluster" {
                        ["cluster".to_string()].into()
                    } else {
                        from.iter().cloned().collect()
                    };
                    ((s.clone(), *p), from)
                })
                .collect();
            assert_eq!(got, want, "{name} {site_name}: planned ingress");
            planned += 1;
        }
    }
    assert!(planned >= 3, "planned {planned} AWS sites");
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

/// Two hub clusters on one site, one behind an internal and one behind an external
/// balancer: both are built, and the external one's public sources are asked for.
#[test]
fn a_site_with_internal_and_external_leaf_balancers_renders_both() {
    let text = r#"
name = "two"
site "c" {
  provider = "aws"
  region   = "eu-west-1"
  cidr     = "10.8.0.0/16"
}
account "APP" {
  user "app" {}
}
hub "inner" {
  site    = "c"
  leaf_lb = "internal"
}
hub "outer" {
  site      = "c"
  leaf_lb   = "external"
  leaf_port = 7423
}
"#;
    let l = canopy_gen::load_str("two.hcl", text).unwrap_or_else(|r| panic!("{r}"));
    let b = canopy_gen::build_bundle(&l.model, &Default::default(), &Default::default()).unwrap();
    let file = |f: &str| {
        String::from_utf8(
            b.files[Path::new(&format!("terraform/aws/c/{f}"))]
                .0
                .clone(),
        )
        .unwrap()
    };
    let main = file("main.tf");
    assert!(
        main.contains("\"inner\" = { scheme = \"internal\", port = 7422, private_ips = [\"10.8.0.5\", \"10.8.32.5\"] }"),
        "{main}"
    );
    assert!(
        main.contains("\"outer\" = { scheme = \"external\", port = 7423, private_ips = [] }"),
        "{main}"
    );
    let words = main.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("leaf_public_cidrs = var.leaf_public_cidrs"),
        "{main}"
    );
    assert!(file("variables.tf").contains("variable \"leaf_public_cidrs\""));
    let readme = file("README.md");
    assert!(
        readme.contains("`inner-lb`") && readme.contains("`outer-lb`"),
        "{readme}"
    );
}
