import Foundation
import PortcullisKernel
import PortcullisNet
import PortcullisRender
import PortcullisSyntax

/// What `fmt` does with each policy.
public enum FormatMode: Sendable {
    /// Print it in canonical form.
    case print
    /// Name the files that are not in canonical form.
    case check
    /// Rewrite those files.
    case write
}

/// The runs of the commands that take policies: compile, check, diff and fmt.
extension Application {
    /// Compiles a policy; the files go to `output` (and `output.EXTENSION` for the files after
    /// the first), or to stdout: one family's file, loadable by its restore tool, or with
    /// `.both` all of them in the capture format. With `alongsideDocker`, only the part
    /// Portcullis owns beside a running daemon.
    public func runCompile(
        _ policy: String, layout: String?, backend: String?, output: String?, family: OutputFamily? = nil,
        inventory: InventorySource? = nil, alongsideDocker: Bool = false
    ) throws -> RunStatus {
        var files = try compile(
            policy, layout: layout, backend: backend, inventory: inventory, alongsideDocker: alongsideDocker)
        if let family, family != .both {
            files = files.filter { ($0.fileExtension == "ip6tables") == (family == .ipv6) }
            guard !files.isEmpty else {
                throw CompileFailure.usage("\(policy) writes no \(family.rawValue) rules for this layout and backend")
            }
        }
        guard let output else {
            if files.count > 1 && family == nil {
                throw CompileFailure.usage(
                    "\(policy) writes IPv4 and IPv6 rules: give --family ipv4 or --family ipv6 to pipe one into iptables-restore or ip6tables-restore, --family both for both in the capture format ('#### ip6tables' between them), or -o FILE for FILE and FILE.ip6tables"
                )
            }
            console.output(CaptureFormat.joined(files))
            return .clean
        }
        for (index, file) in files.enumerated() {
            try Self.write(file.text, to: index == 0 ? output : "\(output).\(file.fileExtension)")
        }
        return .clean
    }

    /// Compiles a policy and has the kernel validate its ruleset. Without CAP_NET_ADMIN the
    /// kernel cannot, and the run fails (exit 2) after saying that the policy itself is valid:
    /// a check that did not happen must not pass in CI.
    public func runCheck(_ policy: String, layout: String?, backend: String?) throws -> RunStatus {
        let files = try compile(policy, layout: layout, backend: backend)
        let extensions = files.map(\.fileExtension).joined(separator: ", ")
        guard Host.hasNetAdmin else {
            console.output("\(policy): policy is valid and compiles (\(extensions))\n")
            console.note(
                "error: the kernel did not validate the ruleset: that needs CAP_NET_ADMIN (run as root, or inside 'unshare -rn'); 'portcullis compile' checks the policy alone"
            )
            return .failed
        }
        let rejections = KernelCheck().validate(files)
        guard !rejections.isEmpty else {
            console.output("\(policy): policy is valid and the kernel accepts its ruleset (\(extensions))\n")
            return .clean
        }
        for rejection in rejections { console.note("error: \(rejection)") }
        return .failed
    }

    /// Compares each policy's compiled output with its golden files, or rewrites them.
    public func runDiff(_ policies: [String], golden: String, update: Bool) -> RunStatus {
        let goldens = Goldens(directory: golden)
        var differences = 0
        var failed = false
        for policy in policies {
            if update {
                switch goldens.update(policyPath: policy) {
                case .success(let changes):
                    console.output(
                        (changes.isEmpty ? "\(policy): golden files up to date" : changes.joined(separator: "\n"))
                            + "\n")
                case .failure(let failure):
                    console.note(failure.report)
                    failed = true
                }
                continue
            }
            switch goldens.compare(policyPath: policy) {
            case .success(let comparisons):
                let diffs = comparisons.compactMap(\.diff)
                for diff in diffs { console.output(diff) }
                differences += diffs.count
                if diffs.isEmpty {
                    console.output(
                        "\(policy): \(comparisons.count) golden file\(comparisons.count == 1 ? "" : "s") match\n")
                }
            case .failure(let failure):
                console.note(failure.report)
                failed = true
            }
        }
        if failed { return .failed }
        guard differences == 0 else {
            console.note("\(differences) golden file\(differences == 1 ? "" : "s") differ")
            return .findings
        }
        return .clean
    }

    /// Formats each policy on its own (included files are not read); a file that cannot be
    /// read or parsed is reported and the others still formatted.
    public func runFormat(_ files: [String], mode: FormatMode) -> RunStatus {
        var unreadable = false
        var notCanonical: [String] = []
        for file in files {
            let name = file == "-" ? "<stdin>" : file
            guard let text = try? HostReader.contents(of: file) else {
                console.note("error: cannot read \(file)")
                unreadable = true
                continue
            }
            let (syntax, diagnostics) = Parser.parse(text, file: name)
            if diagnostics.contains(where: { $0.severity == .error }) {
                var sources = SourceStore()
                sources.add(file: name, text: text)
                console.note(CompileFailure.diagnostics(diagnostics, sources).report)
                unreadable = true
                continue
            }
            let formatted = Printer.print(syntax)
            guard mode != .print else {
                console.output(formatted)
                continue
            }
            guard formatted != text else { continue }
            if mode == .write {
                do {
                    try Self.write(formatted, to: file)
                } catch {
                    console.note(error.report)
                    unreadable = true
                    continue
                }
            }
            notCanonical.append(name)
            console.output(name + "\n")
        }
        if unreadable { return .failed }
        guard mode != .check || notCanonical.isEmpty else {
            console.note(
                "\(notCanonical.count) file\(notCanonical.count == 1 ? " is" : "s are") not in canonical form; 'portcullis fmt --write' rewrites them"
            )
            return .findings
        }
        return .clean
    }

    /// Writes an output file, with the system's reason when it cannot (not Foundation's).
    static func write(_ text: String, to path: String) throws(CompileFailure) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw CompileFailure.usage("cannot write \(path): it is a directory; name a file")
        }
        guard let file = fopen(path, "w") else {
            throw CompileFailure.usage("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        let written = fputs(text, file)
        if fclose(file) != 0 || written < 0 {
            throw CompileFailure.usage("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Which address family `compile` writes to stdout.
public enum OutputFamily: String, CaseIterable, Sendable {
    case ipv4, ipv6, both
}
