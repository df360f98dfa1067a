import ArgumentParser
import Foundation
import PortcullisImport
import PortcullisLayouts
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
        var forced: (any Layout)?
        if let layout {
            guard let known = Layouts.named(layout) else {
                printError("error: import reads the layouts \(Layouts.names.joined(separator: ", ")), not '\(layout)'")
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
        guard let layout = forced ?? HostImport.detectLayout(of: ruleset) else {
            printError("error: \(file) holds no Docker rules (no filter DOCKER chain) and no native table")
            throw ExitCode(2)
        }
        guard let result = HostImport.importHost(from: ruleset, as: layout) else {
            printError("error: \(file) holds no native layout (no table inet portcullis)")
            throw ExitCode(2)
        }
        printError(forced == nil ? "detected layout \(layout.name)" : "layout \(layout.name) (given)")
        try write(result)
    }

    /// Reports what was assumed or left out on stderr and writes the policy, with the user
    /// rules it cannot say quoted at its end.
    func write(_ result: ImportResult) throws {
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
