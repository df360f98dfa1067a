import ArgumentParser
import PortcullisCompiler

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Describe a host that Docker has been managing as a policy.",
        discussion: """
            Reads the rules of a host Docker manages (iptables-save output, with ip6tables-save \
            output after a '#### ip6tables' line, or 'nft -j list ruleset' JSON of the same tables \
            or of Docker 29's own nftables tables), or of a host run by Portcullis' native layout \
            ('nft -j list ruleset' JSON with table inet portcullis), and writes a policy with its networks (bridges, \
            subnets, internal, ICC, masquerade, gateway mode), containers (addresses, publishes), \
            host settings, and the \
            rules users added in DOCKER-USER as allow, deny and egress statements where the \
            language can say them. Compiled with the same layout, the policy gives the same rules \
            back. The layout (docker-1.5, docker-20.10, docker-28, docker-29, native) is detected from the \
            chains unless --layout says it. Names are deterministic: containers after their \
            address, networks after their bridge. What the rules cannot tell, and user rules the \
            language cannot say, are reported as '# not imported:' lines and on stderr.

            Examples:
              iptables-save | portcullis import --from iptables-save - -o host.policy
              nft -j list ruleset | portcullis import --from nft-json - -o host.policy
            """)

    @Option(help: "The input format.")
    var from: RulesetFormat = .iptablesSave

    @Argument(help: "The saved ruleset ('-' for stdin).", completion: .file())
    var file: String

    @Option(help: "The layout the host was written with (default: detected).")
    var layout: String?

    @Option(name: .shortAndLong, help: "Write the policy here instead of stdout.", completion: .file())
    var output: String?

    func run() throws {
        try execute {
            try $0.runImport(ImportRequest(capture: .file(file, format: from), layout: layout, output: output))
        }
    }
}
