// Configuration mistakes are the caller's to fix, so they throw; bad samples are the
// guest's (hostile input), so they are counted and dropped instead.

export class ClassifierConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClassifierConfigError';
  }
}
