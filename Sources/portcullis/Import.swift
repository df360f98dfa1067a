import ArgumentParser
import Foundation
import PortcullisAudit
import PortcullisReaders

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Describe a host that Docker has been managing as a policy.",
        discussion: """
            Reads iptables-save output of a host with Docker's classic rules (as Docker 20.10
            writes them) and writes a policy with its networks (bridges, subnets, internal, ICC,
            masquerade), containers (addresses, publishes) and host settings. Compiled with
            --layout docker-20.10, the policy gives the same rules back. What the rules cannot
            tell is reported as '# not imported:' lines and on stderr.

            Example:
              iptables-save | portcullis import --from iptables-save - -o host.policy
            """)

    @Option(help: "The input format (iptables-save).")
    var from = "iptables-save"

    @Argument(help: "The saved ruleset ('-' for stdin).")
    var file: String

    @Option(name: .shortAndLong, help: "Write the policy here instead of stdout.")
    var output: String?

    func run() throws {
        guard from == "iptables-save" else {
            printError("error: only --from iptables-save is supported")
            throw ExitCode(2)
        }
        let data =
            file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file)
        guard let data else {
            printError("error: cannot read \(file)")
            throw ExitCode(2)
        }
        let text = String(decoding: data, as: UTF8.self).components(separatedBy: "#### ip6tables")[0]
        let importer: DockerImporter
        do {
            importer = DockerImporter(ruleset: try IptablesSaveReader(source: file).read(text).0)
        } catch {
            printError("error: \(file): \(error)")
            throw ExitCode(2)
        }
        guard let layout = importer.detectedLayout else {
            printError("error: \(file) holds no Docker rules (no DOCKER chain)")
            throw ExitCode(2)
        }
        guard layout == .docker2010 else {
            printError("error: detected \(layout.rawValue); import reads the docker-20.10 layout only so far")
            throw ExitCode(2)
        }
        printError("detected layout \(layout.rawValue)")
        let result = importer.importPolicy()
        for line in result.notImported { printError("not imported: \(line)") }
        if let output {
            try result.policy.write(toFile: output, atomically: true, encoding: .utf8)
        } else {
            print(result.policy, terminator: "")
        }
    }
}
