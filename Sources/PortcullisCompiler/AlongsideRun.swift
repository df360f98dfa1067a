import PortcullisIR
import PortcullisKernel
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisRender

/// `--alongside-docker` in the application layer: the owned part of a layout's ruleset
/// (`AlongsideDocker.project`), shared by compile, plan, apply and audit.
extension Compiler {
    /// The owned place when `requested`, or why the layout and backend have none.
    func alongside(_ requested: Bool, layout: any Layout, backend: Backend) -> Result<
        AlongsideDocker?, CompileFailure
    > {
        guard requested else { return .success(nil) }
        return AlongsideDocker.scope(layout: layout.name, firewall: backend.firewall).map { $0 }.mapError {
            .usage("\($0.message)\n    hint: \($0.hint)")
        }
    }

    /// The owned part of a checked policy's ruleset, rendered (see `headed`), and a warning
    /// when the layout writes policy rules outside it.
    func compileAlongside(
        _ policy: Policy, sources: SourceStore, layout: any Layout, backend: Backend, _ alongside: AlongsideDocker
    ) -> Result<(files: [RenderedFile], warnings: [String]), CompileFailure> {
        lower(policy, sources: sources, layout: layout, backend: backend).flatMap { ruleset in
            render(alongside.project(ruleset), layout: layout, backend: backend).map {
                (Self.headed($0, alongside), Self.leftOutWarning(ruleset, alongside).map { [$0] } ?? [])
            }
        }
    }

    /// `warning: ...` naming the policy rules the layout writes outside the owned place.
    static func leftOutWarning(_ ruleset: Ruleset, _ alongside: AlongsideDocker) -> String? {
        let rules = alongside.leftOut(ruleset)
        guard !rules.isEmpty else { return nil }
        let statements = rules.compactMap { $0.provenance?.description }.reduce(into: [String]()) {
            if !$0.contains($1) { $0.append($1) }
        }
        return
            "warning: --alongside-docker leaves out \(rules.count) rule\(rules.count == 1 ? "" : "s") the layout writes outside \(alongside.placeName) (raw PREROUTING exceptions for allows across bridges), for \(statements.joined(separator: "; ")); Docker's own rules still decide that traffic"
    }

    /// The rendered owned part, each file headed by a comment that says what it is and how to
    /// load it (none for JSON, which has no comments). Rule origins move with the lines.
    static func headed(_ files: [RenderedFile], _ alongside: AlongsideDocker) -> [RenderedFile] {
        files.map { file in
            let header: [String]
            switch (alongside.place, file.fileExtension) {
            case (.chain(let table, let chain), let ext) where ext == "iptables" || ext == "ip6tables":
                header = [
                    "# portcullis --alongside-docker: only \(table) \(chain), for '\(ext)-restore --noflush'",
                    "# (declaring the chain flushes it; every other chain stays as the Docker daemon wrote it).",
                    "# Keep '-j \(chain)' the first rule of FORWARD: 'portcullis apply --alongside-docker' does.",
                ]
            case (.table(let name), "nft"):
                header = [
                    "# portcullis --alongside-docker: only the \(name) tables; Docker's tables stay the daemon's.",
                    "# 'portcullis apply --alongside-docker' replaces them in one transaction.",
                ]
            default:
                return file
            }
            return RenderedFile(
                fileExtension: file.fileExtension, text: header.map { $0 + "\n" }.joined() + file.text,
                ruleOrigins: file.ruleOrigins.map {
                    RuleOrigin(line: $0.line + header.count, provenance: $0.provenance)
                })
        }
    }
}

extension KernelInput {
    /// What an apply of this input owns.
    public var scope: OwnershipScope {
        alongside.map { .alongsideDocker(place: $0.placeName) } ?? .layout
    }
}
