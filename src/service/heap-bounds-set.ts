// Imported first by the service's executable: the bounds must be set before the modules that
// follow allocate (evaluating them already grows the new space past its initial size).
import { boundHeap } from './heap-bounds.js';

boundHeap();
