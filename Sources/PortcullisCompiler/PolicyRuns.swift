import Foundation
import PortcullisKernel
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
    /// Compiles a policy; the files go to stdout in the capture format, or to `output` (and
    /// `output.EXTENSION` for the files after the first).
    public func runCompile(_ policy: String, layout: String?, backend: String?, output: String?) throws
        -> RunStatus
    {
        let files = try compiler.compile(policy, layout: layout, backend: backend).get()
        guard let output else {
            console.output(CaptureFormat.joined(files))
            return .clean
        }
        for (index, file) in files.enumerated() {
            try Self.write(file.text, to: index == 0 ? output : "\(output).\(file.fileExtension)")
        }
        return .clean
    }

    /// Compiles a policy and has the kernel validate its ruleset (with CAP_NET_ADMIN; without
    /// it, only the policy checks are made, with a warning).
    public func runCheck(_ policy: String, layout: String?, backend: String?) throws -> RunStatus {
        let files = try compiler.compile(policy, layout: layout, backend: backend).get()
        let extensions = files.map(\.fileExtension).joined(separator: ", ")
        guard Host.hasNetAdmin else {
            console.output("\(policy): policy is valid and compiles (\(extensions))\n")
            console.note(
                "warning: the kernel did not validate the ruleset: that needs CAP_NET_ADMIN (run as root, or inside 'unshare -rn')"
            )
            return .clean
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

    static func write(_ text: String, to path: String) throws(CompileFailure) {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw CompileFailure.usage("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
