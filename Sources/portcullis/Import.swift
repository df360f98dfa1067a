import ArgumentParser
import Foundation
import PortcullisAudit
import PortcullisIR
import PortcullisReaders
import PortcullisRender

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
        let ruleset: Ruleset
        do {
            if from == "nft-json" {
                let read = try NftJSONReader(source: file).read(text)
                for warning in read.warnings { printError("warning: \(file): \(warning)") }
                ruleset = read.ruleset
            } else {
                // A capture may hold ip6tables-save output after a '#### ip6tables' line.
                var read = Ruleset()
                for (index, part) in text.components(separatedBy: "#### ip6tables").prefix(2).enumerated() {
                    let (tables, warnings) = try IptablesSaveReader(family: index == 0 ? .ip : .ip6, source: file)
                        .read(part)
                    for warning in warnings { printError("warning: \(file): \(warning)") }
                    read.tables += tables.tables
                }
                ruleset = read
            }
        } catch {
            printError("error: \(file): \(error)")
            throw ExitCode(2)
        }
        // Portcullis' own native layout: one inet table of sets and maps.
        if let native = NativeImporter(ruleset: ruleset), layout == nil || layout == "native" {
            printError(layout == nil ? "detected layout native" : "layout native (given)")
            try write(native.importPolicy())
            return
        }
        if layout == "native" {
            printError("error: \(file) holds no native layout (no table inet portcullis)")
            throw ExitCode(2)
        }
        let importer = DockerImporter(ruleset: ruleset)
        let chosen: DockerImporter.Layout
        if let forced {
            chosen = forced
            printError("layout \(forced.rawValue) (given)")
        } else {
            guard let detected = importer.detectedLayout else {
                printError("error: \(file) holds no Docker rules (no filter DOCKER chain)")
                throw ExitCode(2)
            }
            chosen = detected
            printError("detected layout \(detected.rawValue)")
        }
        try write(importer.importPolicy(as: chosen))
    }

    /// Reports what was assumed or left out on stderr and writes the policy.
    func write(_ result: DockerImporter.Result) throws {
        for line in result.assumed { printError("assumed: \(line)") }
        for line in result.notImported { printError("not imported: \(line)") }
        var policy = result.policy
        let renderer = IptablesRenderer()
        for (chain, family, rule) in result.notImportedRules {
            let text = (try? renderer.renderRule(rule, chain: chain, family: family)) ?? "\(rule)"
            printError("  \(text)")
            policy += "#   \(text)\n"
        }
        if let output {
            try policy.write(toFile: output, atomically: true, encoding: .utf8)
        } else {
            print(policy, terminator: "")
        }
    }
}
