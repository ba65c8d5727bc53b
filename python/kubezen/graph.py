"""KRO resource graphs: parse, validate, order and draw ResourceGraphDefinitions offline.

The analysis is the one ``kubectl zen graph`` runs, with KRO's rules and error wording:

>>> from kubezen.graph import Graph
>>> g = Graph.from_yaml('''
... apiVersion: kro.run/v1alpha1
... kind: ResourceGraphDefinition
... metadata: {name: web}
... spec:
...   schema: {apiVersion: v1alpha1, kind: Web, spec: {name: string}}
...   resources:
...     - id: service
...       template: {apiVersion: v1, kind: Service, metadata: {name: "${app.metadata.name}"}}
...     - id: app
...       template: {apiVersion: apps/v1, kind: Deployment, metadata: {name: "${schema.spec.name}"}}
... ''')
>>> g.order()
['app', 'service']
>>> g.valid, g.critical_path()
(True, ['app', 'service'])

Problems are :class:`Diagnostic` objects; a cycle makes ``order()`` raise
:class:`GraphCycleError`:

>>> cyclic = Graph.from_dependencies({"a": ["b"], "b": ["a"]})
>>> cyclic.cycles()
[['a', 'b', 'a']]
>>> [d.message for d in cyclic.diagnostics()]
['failed to build dependency graph: graph contains a cycle: a -> b -> a']
"""

from kubezen._core import Diagnostic, Graph, GraphCycleError, GraphError
from kubezen._core import graph_load as load
from kubezen._core import graph_loads as loads

__all__ = ["Diagnostic", "Graph", "GraphCycleError", "GraphError", "load", "loads"]
