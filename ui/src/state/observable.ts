// A minimal change-notification base for the framework-independent state classes.
// UI components subscribe and re-read; tests read the state directly.

export type ChangeListener = () => void;

export class Observable {
  private listeners = new Set<ChangeListener>();
  /** Increases on every change; cheap for UIs to track. */
  version = 0;

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  protected changed(): void {
    this.version += 1;
    for (const l of [...this.listeners]) l();
  }
}
