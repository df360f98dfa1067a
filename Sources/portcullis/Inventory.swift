import ArgumentParser
import PortcullisCompiler

/// Where `inventory` and `import` read a Docker host's inventory from.
enum InventoryFormat: String, CaseIterable, ExpressibleByArgument {
    case docker
    case dockerInspect = "docker-inspect"
    case ansibleFacts = "ansible-facts"
    case inventory

    /// The source the format and files name.
    func source(files: [String], dockerHost: String?) throws -> InventorySource {
        if self != .docker && dockerHost != nil {
            throw CompileFailure.usage("--docker-host goes with --from docker only")
        }
        switch self {
        case .docker:
            guard files.isEmpty else { throw CompileFailure.usage("--from docker reads the daemon, not files") }
            return .daemon(host: dockerHost)
        case .dockerInspect: return .inspectOutput(files)
        case .ansibleFacts: return .ansibleFacts(files)
        case .inventory:
            guard files.count == 1 else { throw CompileFailure.usage("--from inventory reads one snapshot file") }
            return .snapshot(files[0])
        }
    }
}

/// `--inventory`: the host a policy is bound to, for the commands that compile one.
struct InventoryOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Bind the policy to a Docker host: 'docker' (the running daemon) or a snapshot FILE ('portcullis inventory -o FILE').",
            discussion:
                "Its networks and running containers are the host's; addresses, publishes and group members the policy leaves out come from it, and what it pins must agree (docs/language.md, 'Policies bound to an inventory'). Write ./docker for a file named docker.",
            valueName: "docker|FILE"),
        completion: .file())
    var inventory: String?

    @Option(
        help:
            "With --inventory docker: the daemon's address, unix:///PATH or tcp://HOST:PORT (default: DOCKER_HOST, else unix:///var/run/docker.sock)."
    )
    var dockerHost: String?

    /// Where the inventory is read, or nil when the policy is not bound to one.
    func source() throws -> InventorySource? {
        guard let inventory else {
            if dockerHost != nil { throw CompileFailure.usage("--docker-host goes with --inventory docker") }
            return nil
        }
        if inventory == "docker" { return .daemon(host: dockerHost) }
        if dockerHost != nil { throw CompileFailure.usage("--docker-host goes with --inventory docker, not a file") }
        return .snapshot(inventory)
    }
}

struct Inventory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inventory",
        abstract: "Write what a Docker host runs (networks, containers, ports) as a snapshot.",
        discussion: """
            Reads the daemon's version and firewall backend, its bridge networks (bridge name, \
            subnets, gateways, internal, IPv6, ICC, masquerade, host binding, gateway mode, \
            labels) and its running containers (names, labels, addresses and MAC addresses on \
            each network, exposed ports, port bindings as asked and as bound) from the Engine \
            API (API 1.41, Docker 20.10, and later), from 'docker inspect' and 'docker network \
            inspect' output, or from Ansible facts, and writes them as a versioned JSON \
            snapshot (docs/inventory.md) that 'import --from inventory' reads back.

            Examples:
              portcullis inventory -o host.inventory.json
              portcullis inventory --docker-host unix:///run/user/1000/docker.sock
              docker inspect $(docker ps -q) > c.json; docker network inspect $(docker network ls -q) > n.json
              portcullis inventory --from docker-inspect c.json n.json
            """)

    @Option(help: "Where to read: \(InventoryFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var from: InventoryFormat = .docker

    @Argument(help: "The files to read ('-' for stdin), for every source but docker.")
    var files: [String] = []

    @Option(
        help:
            "The daemon's address, unix:///PATH or tcp://HOST:PORT (default: DOCKER_HOST, else unix:///var/run/docker.sock)."
    )
    var dockerHost: String?

    @Option(name: .shortAndLong, help: "Write the snapshot here instead of stdout.")
    var output: String?

    func run() throws {
        try execute {
            try $0.runInventory(
                InventoryRequest(source: try from.source(files: files, dockerHost: dockerHost), output: output))
        }
    }
}
