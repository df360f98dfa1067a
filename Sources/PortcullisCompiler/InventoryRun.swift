import Foundation
import PortcullisDocker
import PortcullisImport
import PortcullisLayouts
import PortcullisSyntax

/// Where an inventory is read from.
public enum InventorySource: Sendable {
    /// A daemon's Engine API: `--docker-host`, else `DOCKER_HOST`, else the default socket.
    case daemon(host: String?)
    /// `docker inspect` and `docker network inspect` output files ('-' for stdin).
    case inspectOutput([String])
    /// The seed's Ansible facts (`name = web` lines).
    case ansibleFacts([String])
    /// A snapshot `portcullis inventory` wrote.
    case snapshot(String)
    /// One already read (by `watch`, which keeps it current from the daemon's events).
    case given(Inventory, origin: String)
}

/// What `inventory` is asked: where to read, and where the snapshot goes (nil: stdout).
public struct InventoryRequest: Sendable {
    public var source: InventorySource
    public var output: String?

    public init(source: InventorySource, output: String? = nil) {
        self.source = source
        self.output = output
    }
}

extension Application {
    /// Reads a Docker host's inventory and writes it as a snapshot (docs/inventory.md).
    public func runInventory(_ request: InventoryRequest) throws -> RunStatus {
        let (inventory, origin) = try readInventory(request.source)
        console.note(
            "read \(inventory.networks.count) bridge network(s) and \(inventory.containers.count) running container(s) from \(origin)"
        )
        guard let output = request.output else {
            console.output(inventory.snapshot())
            return .clean
        }
        try Self.write(inventory.snapshot(), to: output)
        return .clean
    }

    /// The inventory, and where it came from in words (for messages and the policy's header).
    func readInventory(_ source: InventorySource) throws(CompileFailure) -> (Inventory, origin: String) {
        console.progress("reading the Docker host's inventory")
        do {
            switch source {
            case .daemon(let host):
                let client = try EngineClient(host: host)
                return (try client.inventory(), "the Docker daemon at \(client.host)")
            case .inspectOutput(let paths):
                return (try Inventory.fromInspectOutput(try contents(paths)), "docker inspect output")
            case .ansibleFacts(let paths):
                return (try Inventory.fromAnsibleFacts(try contents(paths)), "Ansible facts")
            case .given(let inventory, let origin):
                return (inventory, origin)
            case .snapshot(let path):
                let inventory = try Inventory.fromSnapshot(try HostReader.contents(of: path), source: path)
                return (inventory, "the inventory snapshot \(path)")
            }
        } catch let error as InventoryError {
            throw CompileFailure.usage(error.description)
        } catch let failure as CompileFailure {
            throw failure
        } catch {
            throw CompileFailure.usage("\(error)")
        }
    }

    func contents(_ paths: [String]) throws -> [(text: String, source: String)] {
        guard !paths.isEmpty else { throw CompileFailure.usage("name at least one file ('-' for stdin)") }
        return try paths.map { (try HostReader.contents(of: $0), $0) }
    }

    /// `import --from docker` and the other inventory sources: the layout is the one given,
    /// else the one the daemon's version calls for. The daemon flags the API does not report
    /// come from `rules`, the host's saved rules, when given.
    func importInventory(_ source: InventorySource, rules: HostCapture?, request: ImportRequest) throws -> RunStatus {
        let (inventory, origin) = try readInventory(source)
        var assumed: [String] = []
        let layout: String
        var backend: String?
        if let forced = request.layout {
            guard Layouts.named(forced) != nil, forced != NativeLayout.name else {
                throw CompileFailure.usage(
                    "import --from \(inventory.source) writes the Docker layouts, not '\(forced)'")
            }
            layout = forced
            console.note("layout \(layout) (given)")
        } else if let daemon = inventory.daemon {
            guard let chosen = InventoryImport.layout(for: daemon) else {
                throw CompileFailure.usage(
                    "no layout reproduces Docker \(daemon.version) (docker-20.10, docker-23 and docker-25 cover 18.06 to 27.x); give --layout"
                )
            }
            (layout, backend) = chosen
            console.note("layout \(layout)\(backend.map { " (\($0) backend)" } ?? "") for Docker \(daemon.version)")
        } else {
            layout = Docker2010Layout.name
            assumed.append("layout \(layout): \(origin) does not say the Docker version; --layout names another")
        }
        var flags: InventoryImport.DaemonFlags?
        if let rules {
            let host = try read(rules, liveFirewall: .iptables)
            guard let detected = HostImport.detectLayout(of: host.ruleset),
                let result = HostImport.importHost(from: host.ruleset, as: detected)
            else { throw CompileFailure.usage("\(host.source) holds no Docker rules (no filter DOCKER chain)") }
            flags = result.host.settings
        }
        var imported = InventoryImport.importHost(
            inventory, layout: layout, backend: backend, daemonFlags: flags, origin: origin)
        imported.assumed.insert(contentsOf: assumed, at: 0)
        let policy = Printer.print(syntax(of: ImportResult(host: imported), path: request.output ?? "-"))
        guard let output = request.output else {
            console.output(policy)
            return .clean
        }
        try Self.write(policy, to: output)
        return .clean
    }
}
