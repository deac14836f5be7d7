/// Versions recorded in every run record.
public enum Version {
  /// The mixlab release.
  public static let mixlab = "0.1.0"
}
