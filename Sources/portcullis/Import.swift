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
            back. The layout (docker-1.5, docker-20.10, docker-23, docker-25, docker-28, docker-29, native) is detected from the \
            chains unless --layout says it. Names are deterministic: containers after their \
            address, networks after their bridge. What the rules cannot tell, and user rules the \
            language cannot say, are reported as '# not imported:' lines and on stderr.

            With --from docker it reads the daemon instead (docker-inspect, ansible-facts and \
            inventory read the same data from files; see 'portcullis inventory'): Docker's own \
            names, networks in creation order, containers in start order, Compose projects and \
            services as groups, and the layout Docker's version and firewall backend call for. \
            The Engine API does not report --userland-proxy or --ip6tables: give the host's saved \
            rules with --rules to read them, else Docker's defaults are written as assumed.

            Examples:
              iptables-save | portcullis import - -o host.policy
              nft -j list ruleset | portcullis import - -o host.policy
              iptables-save > rules; portcullis import --from docker --rules rules -o host.policy
            """)

    @Option(
        help: """
            The input format: \((RulesetFormat.allCases.map(\.rawValue) + InventoryFormat.allCases.map(\.rawValue)).joined(separator: ", ")) \
            (default: a saved ruleset, iptables-save text or nft JSON told apart by its content, as audit and explain do).
            """)
    var from: String?

    @Argument(
        help: "The saved ruleset ('-' for stdin), or the inventory files (none for --from docker).",
        completion: .file())
    var files: [String] = []

    @Option(help: "The layout the host was written with (default: detected).")
    var layout: String?

    @Option(
        help:
            "With an inventory: the host's saved rules ('-' for stdin), for the daemon flags the Engine API does not report."
    )
    var rules: String?

    @Option(
        help:
            "With --from docker: the daemon's address, unix:///PATH or tcp://HOST:PORT (default: DOCKER_HOST, else unix:///var/run/docker.sock)."
    )
    var dockerHost: String?

    @Option(name: .shortAndLong, help: "Write the policy here instead of stdout.", completion: .file())
    var output: String?

    func run() throws {
        try execute { application in
            try application.runImport(try request())
        }
    }

    func request() throws -> ImportRequest {
        guard let from else {
            guard files.count == 1, rules == nil, dockerHost == nil else {
                throw CompileFailure.usage("import reads one saved ruleset ('-' for stdin), or --from an inventory")
            }
            return ImportRequest(capture: .file(files[0], format: nil), layout: layout, output: output)
        }
        if let format = RulesetFormat(rawValue: from) {
            guard files.count == 1, rules == nil, dockerHost == nil else {
                throw CompileFailure.usage("--from \(from) reads one saved ruleset ('-' for stdin)")
            }
            return ImportRequest(capture: .file(files[0], format: format), layout: layout, output: output)
        }
        guard let format = InventoryFormat(rawValue: from) else {
            throw CompileFailure.usage(
                "--from takes \((RulesetFormat.allCases.map(\.rawValue) + InventoryFormat.allCases.map(\.rawValue)).joined(separator: ", ")), not '\(from)'"
            )
        }
        return ImportRequest(
            inventory: try format.source(files: files, dockerHost: dockerHost),
            rules: rules.map { .file($0, format: nil) }, layout: layout, output: output)
    }
}
