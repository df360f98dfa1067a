import ArgumentParser
import Foundation
import PortcullisAudit
import PortcullisRender
import PortcullisSyntax

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Describe a host that Docker has been managing as a policy.",
        discussion: """
            Reads the rules of a host Docker manages (iptables-save output, with ip6tables-save
            output after a '#### ip6tables' line, or 'nft -j list ruleset' JSON of the same tables
            or of Docker 29's own nftables tables), or of a host run by Portcullis' native layout
            ('nft -j list ruleset' JSON with table inet portcullis), and writes a policy with its networks (bridges,
            subnets, internal, ICC, masquerade, gateway mode), containers (addresses, publishes),
            host settings, and the
            rules users added in DOCKER-USER as allow, deny and egress statements where the
            language can say them. Compiled with the same layout, the policy gives the same rules
            back. The layout (docker-1.5, docker-20.10, docker-28, docker-29, native) is detected from the
            chains unless --layout says it. Names are deterministic: containers after their
            address, networks after their bridge. What the rules cannot tell, and user rules the
            language cannot say, are reported as '# not imported:' lines and on stderr.

            Examples:
              iptables-save | portcullis import --from iptables-save - -o host.policy
              nft -j list ruleset | portcullis import --from nft-json - -o host.policy
            """)

    @Option(help: "The input format: iptables-save or nft-json.")
    var from = "iptables-save"

    @Argument(help: "The saved ruleset ('-' for stdin).")
    var file: String

    @Option(help: "The layout the host was written with (default: detected).")
    var layout: String?

    @Option(name: .shortAndLong, help: "Write the policy here instead of stdout.")
    var output: String?

    func run() throws {
        guard from == "iptables-save" || from == "nft-json" else {
            printError("error: --from is iptables-save or nft-json")
            throw ExitCode(2)
        }
        var forced: DockerImporter.Layout?
        if let layout, layout != "native" {
            guard let known = DockerImporter.Layout(rawValue: layout) else {
                printError(
                    "error: import reads the layouts \((DockerImporter.Layout.allCases.map(\.rawValue) + ["native"]).joined(separator: ", ")), not '\(layout)'"
                )
                throw ExitCode(2)
            }
            forced = known
        }
        let data =
            file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file)
        guard let data else {
            printError("error: cannot read \(file)")
            throw ExitCode(2)
        }
        let text = String(decoding: data, as: UTF8.self)
        // The same reading as audit and explain (an ip6tables part after '#### ip6tables').
        let reader = HostRuleSource()
        let ruleset =
            (from == "nft-json" ? try reader.readJSON(text, source: file) : try reader.readIptables(text, source: file))
            .ruleset
        if let forced {
            printError("layout \(forced.rawValue) (given)")
            try write(DockerImporter(ruleset: ruleset).importPolicy(as: forced))
        } else if layout == "native" {
            guard let native = NativeImporter(ruleset: ruleset) else {
                printError("error: \(file) holds no native layout (no table inet portcullis)")
                throw ExitCode(2)
            }
            printError("layout native (given)")
            try write(native.importPolicy())
        } else {
            guard let (detected, result) = DetectedImport.importPolicy(from: ruleset) else {
                printError("error: \(file) holds no Docker rules (no filter DOCKER chain) and no native table")
                throw ExitCode(2)
            }
            printError("detected layout \(detected)")
            try write(result)
        }
    }

    /// Reports what was assumed or left out on stderr and writes the policy, with the user
    /// rules it cannot say quoted at its end.
    func write(_ result: DockerImporter.Result) throws {
        for line in result.host.assumed { printError("assumed: \(line)") }
        for line in result.host.notImported { printError("not imported: \(line)") }
        var syntax = result.host.syntax(path: output ?? "-")
        let renderer = IptablesRenderer()
        for (chain, family, rule) in result.notImportedRules {
            let text = (try? renderer.renderRule(rule, chain: chain, family: family)) ?? "\(rule)"
            printError("  \(text)")
            syntax.endTrivia.append(.comment("#   \(text)"))
        }
        let policy = Printer.print(syntax)
        if let output {
            try policy.write(toFile: output, atomically: true, encoding: .utf8)
        } else {
            print(policy, terminator: "")
        }
    }
}

extension ImportedHost {
    /// The policy that says this host, as a syntax tree (printed, it is in canonical form):
    /// the header above the host block, what was assumed and not imported at the end.
    /// `explain` checks the same tree. It belongs with the importer once PortcullisAudit may
    /// depend on PortcullisSyntax.
    func syntax(path: String) -> SyntaxFile {
        func words(_ values: [String]) -> [Located<String>] { values.map { .unplaced($0) } }
        func setting(_ keyword: String, _ values: [String], _ clauses: [(String, [String])] = []) -> Setting {
            Setting(
                keyword: .unplaced(keyword), values: words(values),
                clauses: clauses.filter { !$0.1.isEmpty }.map { Clause(keyword: .unplaced($0.0), values: words($0.1)) })
        }
        func comments(_ lines: [String], _ prefix: String = "") -> [Trivia] {
            lines.map { .comment("# " + prefix + $0) }
        }

        let host = settings.map { hostSetting -> Setting in
            switch hostSetting {
            case .layout(let name): return setting("layout", [name])
            case .backend(let name): return setting("backend", [name])
            case .userlandProxyOff: return setting("userland-proxy", ["off"])
            case .ip6tablesOn: return setting("ip6tables", ["on"])
            case .forwardPolicy(let policy): return setting("forward-policy", [policy])
            case .external(let interfaces): return setting("external", interfaces)
            case .logDrops(let rate, let prefix):
                return setting("log-drops", [], [("rate", rate.map { [$0] } ?? []), ("prefix", [prefix])])
            case .countDropsOn: return setting("count-drops", ["on"])
            }
        }
        var statements: [Statement] = [
            .block(Block(kind: .host, name: nil, settings: host, leadingTrivia: comments(header) + [.blankLine]))
        ]
        for network in networks {
            var lines = [setting("bridge", [network.bridge])] + network.subnets.map { setting("subnet", [$0]) }
            if let gateway = network.gateway { lines.append(setting("gateway", [gateway])) }
            if network.internal { lines.append(setting("internal", [])) }
            if network.iccDeny { lines.append(setting("icc", ["deny"])) }
            if network.masqueradeOff { lines.append(setting("masquerade", ["off"])) }
            if let mode = network.gatewayMode { lines.append(setting("gateway-mode", [mode])) }
            statements.append(.block(Block(kind: .network, name: .unplaced(network.name), settings: lines)))
        }
        for container in containers {
            let attachments = container.addresses.map { setting("attach", [container.network, $0]) }
            let publishes = container.publishes.map { publish in
                publish.hostSide.map {
                    setting("publish", [$0], [("->", [publish.containerSide]), ("from", publish.sources)])
                }
                    ?? setting("publish", [publish.containerSide], [("from", publish.sources)])
            }
            statements.append(
                .block(Block(kind: .container, name: .unplaced(container.name), settings: attachments + publishes)))
        }
        for (at, group) in groups.enumerated() {
            statements.append(
                .list(
                    ListBlock(
                        kind: .group, name: .unplaced(group.name),
                        entries: group.members.map { ListEntry(.unplaced($0)) },
                        leadingTrivia: at == 0 ? [.blankLine] : [])))
        }
        for (at, flow) in flows.enumerated() {
            var rule = setting(
                flow.kind.rawValue, [flow.source], [("->", [flow.destination]), ("port", flow.ports)])
            rule.leadingTrivia =
                (at == 0 ? [.blankLine] + comments(flowsHeading.map { [$0] } ?? []) : [])
                + comments(flow.comment.map { [$0] } ?? [])
            statements.append(.rule(rule))
        }
        return SyntaxFile(
            path: path, statements: statements,
            endTrivia: comments(assumed, "assumed: ") + comments(notImported, "not imported: "))
    }
}
