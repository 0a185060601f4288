//! The dependency graph of the atomic services (oneshots and longruns): bundles and templates
//! resolved to their members, unknown names and cycles rejected, and the set to start chosen.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use super::definition::{Definition, Kind};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("service {service}: depends on unknown service {dependency}")]
    UnknownDependency { service: String, dependency: String },
    #[error("service {service}: bundle contains unknown service {member}")]
    UnknownMember { service: String, member: String },
    #[error("service {0}: dependency cycle {1}")]
    Cycle(String, String),
    #[error("service {0}: defined twice")]
    Duplicate(String),
    #[error("--only {0}: no such service, bundle or template")]
    UnknownSelection(String),
}

/// Atomic services with resolved dependencies.
#[derive(Debug, Clone)]
pub struct Graph {
    services: BTreeMap<String, Definition>,
    /// Direct dependencies of each atomic service (atomic names only).
    deps: BTreeMap<String, BTreeSet<String>>,
    /// bundle or template name → atomic members.
    groups: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Builds the graph; every problem is returned, not just the first.
    pub fn build(definitions: Vec<Definition>) -> Result<Self, Vec<GraphError>> {
        let mut errors = Vec::new();
        let mut all: BTreeMap<String, Definition> = BTreeMap::new();
        for def in definitions {
            if all.contains_key(&def.name) {
                errors.push(GraphError::Duplicate(def.name.clone()));
            }
            all.insert(def.name.clone(), def);
        }
        let groups = resolve_groups(&all, &mut errors);
        let mut deps = BTreeMap::new();
        for def in all
            .values()
            .filter(|d| !matches!(d.kind, Kind::Bundle { .. }))
        {
            let mut resolved = BTreeSet::new();
            for dep in &def.dependencies {
                match (groups.get(dep), all.get(dep)) {
                    (Some(members), _) => resolved.extend(members.iter().cloned()),
                    (None, Some(_)) => {
                        resolved.insert(dep.clone());
                    }
                    (None, None) => errors.push(GraphError::UnknownDependency {
                        service: def.name.clone(),
                        dependency: dep.clone(),
                    }),
                }
            }
            deps.insert(def.name.clone(), resolved);
        }
        let services: BTreeMap<String, Definition> = all
            .into_iter()
            .filter(|(_, d)| !matches!(d.kind, Kind::Bundle { .. }))
            .collect();
        let graph = Graph {
            services,
            deps,
            groups,
        };
        if let Some(cycle) = graph.find_cycle() {
            errors.push(cycle);
        }
        if errors.is_empty() {
            Ok(graph)
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Definition> {
        self.services.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    pub fn dependencies(&self, name: &str) -> impl Iterator<Item = &str> {
        self.deps
            .get(name)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Services that depend directly on `name`.
    pub fn dependents<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.deps
            .iter()
            .filter(move |(_, ds)| ds.contains(name))
            .map(|(n, _)| n.as_str())
    }

    /// Keeps only the selected services (atomic names, bundles or templates) and everything they
    /// depend on; an empty selection keeps everything.
    pub fn select(mut self, only: &[String]) -> Result<Self, GraphError> {
        if only.is_empty() {
            return Ok(self);
        }
        let mut wanted = BTreeSet::new();
        let mut stack: Vec<String> = Vec::new();
        for name in only {
            match (self.groups.get(name), self.services.contains_key(name)) {
                (Some(members), _) => stack.extend(members.iter().cloned()),
                (None, true) => stack.push(name.clone()),
                (None, false) => return Err(GraphError::UnknownSelection(name.clone())),
            }
        }
        while let Some(name) = stack.pop() {
            if wanted.insert(name.clone()) {
                stack.extend(self.dependencies(&name).map(str::to_owned));
            }
        }
        self.services.retain(|n, _| wanted.contains(n));
        self.deps.retain(|n, _| wanted.contains(n));
        Ok(self)
    }

    /// Depth-first search for a cycle, reported as `a -> b -> a`.
    fn find_cycle(&self) -> Option<GraphError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        fn visit<'a>(
            g: &'a Graph,
            name: &'a str,
            marks: &mut BTreeMap<&'a str, Mark>,
            path: &mut Vec<&'a str>,
        ) -> Option<GraphError> {
            match marks.get(name) {
                Some(Mark::Done) => return None,
                Some(Mark::Visiting) => {
                    let start = path.iter().position(|n| *n == name).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[start..].to_vec();
                    cycle.push(name);
                    return Some(GraphError::Cycle(name.to_owned(), cycle.join(" -> ")));
                }
                None => {}
            }
            marks.insert(name, Mark::Visiting);
            path.push(name);
            for dep in g.dependencies(name) {
                if let Some(e) = visit(g, dep, marks, path) {
                    return Some(e);
                }
            }
            path.pop();
            marks.insert(name, Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        self.names()
            .find_map(|name| visit(self, name, &mut marks, &mut Vec::new()))
    }
}

/// Members of every bundle (recursively) and every template (its instances).
fn resolve_groups(
    all: &BTreeMap<String, Definition>,
    errors: &mut Vec<GraphError>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for def in all.values() {
        if let Some(template) = &def.template {
            groups
                .entry(template.clone())
                .or_default()
                .insert(def.name.clone());
        }
    }
    for def in all.values() {
        if let Kind::Bundle { .. } = def.kind {
            let mut members = BTreeSet::new();
            let mut trail = vec![def.name.clone()];
            expand_bundle(all, &groups, def, &mut members, &mut trail, errors);
            groups.insert(def.name.clone(), members);
        }
    }
    groups
}

fn expand_bundle(
    all: &BTreeMap<String, Definition>,
    templates: &BTreeMap<String, BTreeSet<String>>,
    bundle: &Definition,
    members: &mut BTreeSet<String>,
    trail: &mut Vec<String>,
    errors: &mut Vec<GraphError>,
) {
    let Kind::Bundle { contents } = &bundle.kind else {
        return;
    };
    for member in contents {
        if let Some(instances) = templates.get(member) {
            members.extend(instances.iter().cloned());
            continue;
        }
        match all.get(member) {
            Some(
                def @ Definition {
                    kind: Kind::Bundle { .. },
                    ..
                },
            ) => {
                if trail.contains(member) {
                    trail.push(member.clone());
                    errors.push(GraphError::Cycle(bundle.name.clone(), trail.join(" -> ")));
                    trail.pop();
                    continue;
                }
                trail.push(member.clone());
                expand_bundle(all, templates, def, members, trail, errors);
                trail.pop();
            }
            Some(_) => {
                members.insert(member.clone());
            }
            None => errors.push(GraphError::UnknownMember {
                service: bundle.name.clone(),
                member: member.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn def(name: &str, deps: &[&str]) -> Definition {
        Definition {
            name: name.into(),
            template: None,
            dir: PathBuf::from("/x"),
            kind: Kind::Oneshot {
                up: "true".into(),
                down: None,
            },
            dependencies: deps.iter().map(|s| s.to_string()).collect(),
            timeout_up: None,
            timeout_down: None,
            down_signal: nix::sys::signal::Signal::SIGTERM,
            env: Default::default(),
        }
    }

    fn bundle(name: &str, contents: &[&str]) -> Definition {
        let mut d = def(name, &[]);
        d.kind = Kind::Bundle {
            contents: contents.iter().map(|s| s.to_string()).collect(),
        };
        d
    }

    fn instance(template: &str, i: u32, deps: &[&str]) -> Definition {
        let mut d = def(&format!("{}-{i}", template.trim_end_matches('@')), deps);
        d.template = Some(template.into());
        d
    }

    #[test]
    fn templates_and_bundles_resolve_to_their_members() {
        let g = Graph::build(vec![
            def("db", &[]),
            instance("node@", 1, &["db"]),
            instance("node@", 2, &["db"]),
            def("exporter", &["node@"]),
            bundle("core", &["db", "exporter"]),
            def("late", &["core"]),
        ])
        .expect("valid");
        let deps: Vec<_> = g.dependencies("exporter").collect();
        assert_eq!(deps, ["node-1", "node-2"]);
        let deps: Vec<_> = g.dependencies("late").collect();
        assert_eq!(deps, ["db", "exporter"]);
        let dependents: Vec<_> = g.dependents("db").collect();
        assert_eq!(dependents, ["late", "node-1", "node-2"]);
    }

    #[test]
    fn unknown_dependencies_and_cycles_are_rejected() {
        let errors = Graph::build(vec![
            def("a", &["b"]),
            def("b", &["c"]),
            def("c", &["a"]),
            def("d", &["nope"]),
        ])
        .expect_err("invalid");
        assert!(errors.contains(&GraphError::UnknownDependency {
            service: "d".into(),
            dependency: "nope".into()
        }));
        assert!(errors
            .iter()
            .any(|e| matches!(e, GraphError::Cycle(_, path) if path == "a -> b -> c -> a")));
    }

    #[test]
    fn selection_keeps_dependencies() {
        let g = Graph::build(vec![def("a", &[]), def("b", &["a"]), def("c", &[])])
            .expect("valid")
            .select(&["b".into()])
            .expect("known");
        let names: Vec<_> = g.names().collect();
        assert_eq!(names, ["a", "b"]);
        let err = Graph::build(vec![def("a", &[])])
            .expect("valid")
            .select(&["zz".into()])
            .expect_err("unknown");
        assert_eq!(err, GraphError::UnknownSelection("zz".into()));
    }
}
