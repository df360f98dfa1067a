/// The version `portcullis --version` prints; raised with each release.
public enum PortcullisVersion {
    public static let current = "0.5.0"
}
