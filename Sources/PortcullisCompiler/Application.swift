import PortcullisIR
import PortcullisNet
import PortcullisPolicy
import PortcullisRender
import PortcullisSyntax

/// The runs behind the commands that read hosts (`audit`, `explain`, `import`): each reads its
/// inputs, strings the stages together and writes through the console. Commands only parse
/// arguments; tests call these in-process. A run that cannot finish throws a `CompileFailure`,
/// which the command line reports on stderr with exit code 2.
public struct Application: Sendable {
    public let console: any Console
    let compiler = Compiler()

    public init(console: any Console = StandardConsole()) {
        self.console = console
    }

    /// Reads and checks a policy file, bound to the host `inventory` reads when given, or
    /// throws its diagnostics; its warnings go to stderr.
    func check(_ path: String, inventory: InventorySource? = nil) throws -> (Policy, SourceStore) {
        let (policy, sources) = try compiler.check(path, boundTo: try inventory.map(hostInventory)).get()
        for warning in policy.warnings { console.note(warning.rendered(sources: sources)) }
        return (policy, sources)
    }

    /// Checks, lowers and renders a policy file (its warnings to stderr).
    func compile(
        _ path: String, layout: String?, backend: String?, inventory: InventorySource? = nil,
        alongsideDocker: Bool = false
    ) throws -> [RenderedFile] {
        let (policy, sources) = try check(path, inventory: inventory)
        guard alongsideDocker else {
            return try compiler.compile(policy, sources: sources, layout: layout, backend: backend).get()
        }
        let (resolved, resolvedBackend) = try compiler.resolve(
            layout: layout, backend: backend, policy: policy, sources: sources
        ).get()
        let alongside = try compiler.alongside(true, layout: resolved, backend: resolvedBackend).get()!
        let (files, warnings) = try compiler.compileAlongside(
            policy, sources: sources, layout: resolved, backend: resolvedBackend, alongside
        ).get()
        for warning in warnings { console.note(warning) }
        return files
    }

    /// Reads an inventory for binding a policy to it, and says what was read.
    func hostInventory(_ source: InventorySource) throws -> HostInventory {
        let (inventory, origin) = try readInventory(source)
        console.note(
            "bound to \(origin): \(inventory.networks.count) bridge network(s), \(inventory.containers.count) running container(s)"
        )
        return HostInventory(inventory, origin: origin)
    }

    /// The kind of firewall to read a live host through: the backend asked for, else the
    /// policy's, else iptables.
    func liveFirewall(backend: String?, policy: Policy?) throws -> Firewall {
        let name = backend ?? policy?.host.backend ?? Backend.iptables.rawValue
        guard let backend = Backend(rawValue: name) else {
            throw CompileFailure.usage(
                "unknown backend '\(name)'; backends are: \(Backend.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return backend.firewall
    }

    func read(_ capture: HostCapture, liveFirewall: Firewall) throws -> CapturedHost {
        try HostReader(console: console).read(capture, liveFirewall: liveFirewall)
    }
}
