import PortcullisDocker
import PortcullisIR
import PortcullisImport
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisRender
import PortcullisSyntax

/// Why a compilation stopped: policy diagnostics (with the sources to quote), or a usage
/// problem such as an unknown layout.
public enum CompileFailure: Error, Sendable {
    case diagnostics([Diagnostic], SourceStore)
    case usage(String)

    /// The message for stderr: every diagnostic with its source line and caret.
    public var report: String {
        switch self {
        case .diagnostics(let diagnostics, let sources):
            let errors = diagnostics.filter { $0.severity == .error }.count
            return diagnostics.sorted { $0.range.start < $1.range.start }.map { $0.rendered(sources: sources) }
                .joined(separator: "\n") + "\n\(errors) error\(errors == 1 ? "" : "s")"
        case .usage(let message):
            return "error: \(message)"
        }
    }
}

/// What a Docker host runs, and where it was read (for messages): a policy checked against it
/// takes the addresses, publishes and group members it leaves out from it.
public struct HostInventory: Sendable {
    public let inventory: Inventory
    public let origin: String

    public init(_ inventory: Inventory, origin: String) {
        self.inventory = inventory
        self.origin = origin
    }
}

/// The whole pipeline: policy file -> syntax tree -> checked policy -> IR -> rendered files.
public struct Compiler: Sendable {
    public init() {}

    /// Reads and checks a policy file (with its includes), bound to `host` when given: the
    /// host's networks and running containers, with what the policy leaves out taken from it.
    public func check(_ path: String, boundTo host: HostInventory? = nil) -> Result<
        (Policy, SourceStore), CompileFailure
    > {
        load(path).flatMap { check($0, boundTo: host) }
    }

    /// Reads a policy file with its includes, without checking it: what `watch` keeps as its
    /// running policy, so that an edit takes effect only when it is reloaded and checks.
    public func load(_ path: String) -> Result<LoadedPolicy, CompileFailure> {
        let (loaded, diagnostics) = PolicyLoader.load(path)
        if diagnostics.contains(where: { $0.severity == .error }) {
            return .failure(.diagnostics(diagnostics, loaded.sources))
        }
        return .success(loaded)
    }

    /// Checks a policy already read (its diagnostics quote the files it was read from).
    public func check(_ policy: LoadedPolicy, boundTo host: HostInventory? = nil) -> Result<
        (Policy, SourceStore), CompileFailure
    > {
        var loaded = policy
        var diagnostics: [Diagnostic] = []
        if let host {
            let bound: LoadedPolicy?
            (bound, diagnostics) = InventoryBinding.bind(loaded, to: host.inventory, origin: host.origin)
            guard let bound else { return .failure(.diagnostics(diagnostics, loaded.sources)) }
            loaded = bound
        }
        switch Checker.check(loaded) {
        case .success(var policy):
            policy.warnings = diagnostics + policy.warnings
            return .success((policy, loaded.sources))
        case .failure(let error): return .failure(.diagnostics(diagnostics + error.diagnostics, loaded.sources))
        }
    }

    /// The layout and backend to use: the command line's, else the policy's, else the defaults.
    /// A name the policy gives that is not a layout or backend is a diagnostic at its line
    /// (with `sources` to quote it); one from the command line, a usage error.
    public func resolve(layout: String?, backend: String?, policy: Policy, sources: SourceStore = SourceStore())
        -> Result<(any Layout, Backend), CompileFailure>
    {
        let layoutName = layout ?? policy.host.layout ?? "docker-20.10"
        guard let resolvedLayout = Layouts.named(layoutName) else {
            return .failure(
                unknownName(
                    "layout", layoutName, known: Layouts.names, setBy: layout == nil ? policy : nil, sources: sources))
        }
        // The command line's backend, else the policy's if the layout is written for it (a
        // layout chosen on the command line may not be), else the first one the layout takes.
        let takes = { (backend: Backend) in resolvedLayout.firewalls.contains(backend.firewall) }
        let policyBackend = policy.host.backend.flatMap { name in
            Backend(rawValue: name).map(takes) == false ? nil : name
        }
        let backendName =
            backend ?? policyBackend ?? (Backend.allCases.first(where: takes) ?? .iptables).rawValue
        guard let resolvedBackend = Backend(rawValue: backendName) else {
            return .failure(
                unknownName(
                    "backend", backendName, known: Backend.allCases.map(\.rawValue),
                    setBy: backend == nil ? policy : nil, sources: sources))
        }
        guard takes(resolvedBackend) else {
            let backends = Backend.allCases.filter(takes).map(\.rawValue)
            return .failure(
                .usage(
                    "layout '\(resolvedLayout.name)' is written for \(resolvedLayout.firewalls.map(\.rawValue).sorted().joined(separator: " and ")) only; use --backend \(backends.joined(separator: " or "))"
                ))
        }
        return .success((resolvedLayout, resolvedBackend))
    }

    /// An unknown layout or backend name, with the closest known one: at the policy's
    /// setting when `policy` gave it, else as a usage error.
    func unknownName(_ kind: String, _ name: String, known: [String], setBy policy: Policy?, sources: SourceStore)
        -> CompileFailure
    {
        let closest = closestMatch(name, in: known)
        let choices = "\(kind)s are: \(known.joined(separator: ", "))"
        guard let location = policy?.host.locations[kind] else {
            return .usage("unknown \(kind) '\(name)'; \(choices)" + (closest.map { "; did you mean '\($0)'?" } ?? ""))
        }
        let diagnostic = Diagnostic(
            "unknown \(kind) '\(name)'", at: SourceRange(start: location, length: kind.utf8.count),
            hint: (closest.map { "did you mean '\($0)'? " } ?? "") + choices)
        return .diagnostics([diagnostic], sources)
    }

    /// Lowers a checked policy for a backend's kind of firewall.
    public func lower(_ policy: Policy, sources: SourceStore, layout: any Layout, backend: Backend) -> Result<
        Ruleset, CompileFailure
    > {
        layout.lower(policy, for: backend.firewall).mapError { .diagnostics($0.diagnostics, sources) }
    }

    /// Resolves the layout and backend for a checked policy and lowers it: the ruleset audit
    /// compares a host with and explain walks.
    public func lower(_ policy: Policy, sources: SourceStore, layout: String?, backend: String?) -> Result<
        (Ruleset, Backend), CompileFailure
    > {
        resolve(layout: layout, backend: backend, policy: policy, sources: sources).flatMap { layout, backend in
            lower(policy, sources: sources, layout: layout, backend: backend).map { ($0, backend) }
        }
    }

    /// Renders a lowered ruleset.
    public func render(_ ruleset: Ruleset, layout: any Layout, backend: Backend) -> Result<
        [RenderedFile], CompileFailure
    > {
        do {
            return .success(try backend.renderer.render(ruleset))
        } catch {
            return .failure(.usage("\(layout.name) with the \(backend.rawValue) backend: \(error)"))
        }
    }

    /// Lowers and renders a checked policy.
    public func render(_ policy: Policy, sources: SourceStore, layout: any Layout, backend: Backend) -> Result<
        [RenderedFile], CompileFailure
    > {
        lower(policy, sources: sources, layout: layout, backend: backend).flatMap {
            render($0, layout: layout, backend: backend)
        }
    }

    /// Everything at once, for a policy file.
    public func compile(
        _ path: String, layout: String?, backend: String?, host: HostInventory? = nil, alongsideDocker: Bool = false
    ) -> Result<[RenderedFile], CompileFailure> {
        check(path, boundTo: host).flatMap {
            compile($0, sources: $1, layout: layout, backend: backend, alongsideDocker: alongsideDocker)
        }
    }

    /// Resolves the layout and backend for a checked policy, then lowers and renders it; with
    /// `alongsideDocker`, only the part Portcullis owns beside the daemon (see `AlongsideDocker`).
    public func compile(
        _ policy: Policy, sources: SourceStore, layout: String?, backend: String?, alongsideDocker: Bool = false
    ) -> Result<[RenderedFile], CompileFailure> {
        resolve(layout: layout, backend: backend, policy: policy, sources: sources).flatMap { layout, backend in
            alongside(alongsideDocker, layout: layout, backend: backend).flatMap { alongside in
                guard let alongside else { return render(policy, sources: sources, layout: layout, backend: backend) }
                return compileAlongside(policy, sources: sources, layout: layout, backend: backend, alongside).map(
                    \.files)
            }
        }
    }
}

/// A policy compiled for the kernel: what `apply` and `plan` hand to the kernel side.
public struct KernelInput: Sendable {
    public let layout: any Layout
    public let backend: Backend
    /// The rendered files, with their rule origins (to trace a kernel rejection to its line).
    public let files: [RenderedFile]
    /// The bridges, external interfaces and container addresses the policy names: an apply
    /// that removes rules of others would cut those off (see `CutOff`).
    public let knownNames: Set<String>
    /// The checker's warnings, rendered with their source lines, for stderr.
    public let warnings: [String]
    /// With `--alongside-docker`: the place owned; the files hold only that.
    public var alongside: AlongsideDocker? = nil

    /// The files by extension, as the state directory records them.
    public var filesByExtension: [String: String] {
        Dictionary(uniqueKeysWithValues: files.map { ($0.fileExtension, $0.text) })
    }
}

extension Compiler {
    /// Compiles a policy file for the kernel. nft text with sets gets a JSON twin: the next
    /// apply compares it with what it wants, to send only changed set elements (without sets
    /// no change can be made of elements alone). nft JSON gets a text twin: plans show changes
    /// in the firewall's own words.
    /// `loaded`: the policy already read from `path` (the watcher's running policy), compiled
    /// instead of reading the file again.
    public func compileForKernel(
        _ path: String, loaded: LoadedPolicy? = nil, layout: String?, backend: String?, host: HostInventory? = nil,
        alongsideDocker: Bool = false
    ) -> Result<KernelInput, CompileFailure> {
        (loaded.map { .success($0) } ?? load(path)).flatMap { check($0, boundTo: host) }.flatMap { policy, sources in
            resolve(layout: layout, backend: backend, policy: policy, sources: sources).flatMap { layout, backend in
                alongside(alongsideDocker, layout: layout, backend: backend).flatMap { alongside in
                    lower(policy, sources: sources, layout: layout, backend: backend).flatMap { lowered in
                        let ruleset = alongside?.project(lowered) ?? lowered
                        return render(ruleset, layout: layout, backend: backend).flatMap { rendered in
                            let files = alongside.map { Self.headed(rendered, $0) } ?? rendered
                            let twin: Backend? =
                                switch backend {
                                case .nftables: ruleset.tables.contains { !$0.sets.isEmpty } ? .nftablesJSON : nil
                                case .nftablesJSON: .nftables
                                case .iptables: nil
                                }
                            let input = { (files: [RenderedFile]) in
                                KernelInput(
                                    layout: layout, backend: backend, files: files,
                                    knownNames: Self.knownNames(of: policy),
                                    warnings: policy.warnings.map { $0.rendered(sources: sources) }
                                        + (alongside.flatMap { Self.leftOutWarning(lowered, $0) }.map { [$0] } ?? []),
                                    alongside: alongside)
                            }
                            guard let twin else { return .success(input(files)) }
                            return render(ruleset, layout: layout, backend: twin).map { input(files + $0) }
                        }
                    }
                }
            }
        }
    }

    static func knownNames(of policy: Policy) -> Set<String> {
        var names = Set(policy.networks.map(\.bridge) + policy.host.externalInterfaces)
        for container in policy.containers {
            for attachment in container.attachments {
                for address in [attachment.address4, attachment.address6].compactMap({ $0 }) {
                    names.insert(address.description)
                }
            }
        }
        return names
    }
}
